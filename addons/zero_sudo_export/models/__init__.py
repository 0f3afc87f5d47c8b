from . import dialog_export, exporter
