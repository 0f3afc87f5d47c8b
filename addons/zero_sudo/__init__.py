from . import controllers, models
from .hooks import pre_init_hook
from .patches import install as post_load
