"""Evaluation metrics on numpy arrays: no networks, no TensorFlow.

The launchers compute probabilities / features / images with the judge and the generator
and hand them to these functions; every statistic is float64 numpy (scipy where needed).
"""

from tfstylegan.metrics.frechet import (feature_statistics, fid_from_features, frechet_distance,
                                        kernel_inception_distance, polynomial_mmd2)
from tfstylegan.metrics.inception_score import inception_score, validate_probabilities
from tfstylegan.metrics.memorization import (MemorizationReport, closest_pairs_figure, memorization_report,
                                             nearest_neighbours)
from tfstylegan.metrics.ppl import filtered_mean, perceptual_path_length
from tfstylegan.metrics.precision_recall import (kth_neighbour_radii, pairwise_distances,
                                                 precision_recall)
from tfstylegan.metrics.spread import pixel_spread

__all__ = [
    "inception_score", "validate_probabilities",
    "frechet_distance", "fid_from_features", "feature_statistics", "kernel_inception_distance",
    "polynomial_mmd2",
    "precision_recall", "pairwise_distances", "kth_neighbour_radii",
    "nearest_neighbours", "memorization_report", "MemorizationReport", "closest_pairs_figure",
    "perceptual_path_length", "filtered_mean",
    "pixel_spread",
]
