from . import test_contact_erasure, test_erasure
