from . import article, note
