// Quantized-weight kernels of the cuda backend (fp8, int4), included by
// sluice.cu.
