"""StyleGAN2 training: the loop, checkpoints/run folders, distribution strategies, summaries.

Importing this package stays cheap; import the submodules you need:
`tfstylegan.training.loop.train`, `tfstylegan.training.checkpoint.load_generator`, ...
"""
