from . import article, message, note
