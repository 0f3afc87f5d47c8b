from . import controllers, models
from .patches import install as post_load
