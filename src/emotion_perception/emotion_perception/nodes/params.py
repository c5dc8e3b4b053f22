"""Transitional alias of :mod:`emotion_perception.core.params` (the parameter schema).

The schema moved to ``core/params.py`` so that code outside the node layer (builders, bag
evaluation, training) need not import from ``nodes/``. Only ``emotion_training.temporal`` still
imports this path while it is being split; import ``emotion_perception.core.params`` instead.
This module goes once nothing imports it.
"""

from ..core.params import *  # noqa: F401,F403
