"""The application layer: what the launchers run, built on the library below it.

generation (seeds -> images, PNGs), figures (the study's figures), projection (image -> W),
evaluation (IS / FID / KID / P&R / memorization / PPL / utility with the judge), plots (training curves),
benchmark (speed and memory of the real training step).
"""
