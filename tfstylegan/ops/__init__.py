"""StyleGAN2 kernels on NHWC tensors, each with a plain reference (`impl='ref'`) and a fast path.

Modules, used as in stylegan2-ada-pytorch (`from tfstylegan.ops import upfirdn2d`, then
`upfirdn2d.setup_filter(...)`, `upfirdn2d.downsample2d(...)`):

- `upfirdn2d`: upsample, pad, FIR-filter, downsample (`setup_filter`, `upfirdn2d`,
  `filter2d`, `upsample2d`, `downsample2d`).
- `bias_act`: bias + activation + gain + clamp (`bias_act`, `activation_funcs`).
- `conv2d_resample`: convolution with FIR up/downsampling (`conv2d_resample`).
- `modulated_conv2d`: StyleGAN2's modulated/demodulated convolution (`modulated_conv2d`).
- `grid_sample`: torch-style `affine_grid` and bilinear `grid_sample` (zero padding), for ADA.
- `random`: counter-based random numbers identical eagerly and under XLA (`random_uniform`, `random_normal`).

The package re-exports modules, not functions, so that `ops.upfirdn2d` is always the
module whatever was imported first.
"""

from tfstylegan.ops import bias_act, conv2d_resample, grid_sample, modulated_conv2d, random, upfirdn2d

__all__ = ['bias_act', 'conv2d_resample', 'grid_sample', 'modulated_conv2d', 'random', 'upfirdn2d']
