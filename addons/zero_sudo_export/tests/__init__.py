from . import test_dialog_export, test_export, test_streaming
