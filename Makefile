# Targets that need tools beyond Go. The kernels build on the GPU machine
# (CUDA 13 nvcc); commit the PTX they produce under gpu/kernels/.
.PHONY: kernels
kernels:
	bash gpu/kernels/build.sh
