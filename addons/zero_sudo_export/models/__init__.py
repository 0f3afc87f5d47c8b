from . import exporter, dialog_export
