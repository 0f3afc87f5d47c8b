from . import article
