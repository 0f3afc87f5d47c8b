from . import dialog, export
