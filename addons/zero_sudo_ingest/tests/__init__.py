from . import test_controller, test_landing_table, test_materialize, test_streams
