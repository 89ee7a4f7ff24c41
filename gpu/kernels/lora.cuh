// Grouped LoRA kernels of the cuda backend (gpu.LoRAOps), included by
// sluice.cu.
