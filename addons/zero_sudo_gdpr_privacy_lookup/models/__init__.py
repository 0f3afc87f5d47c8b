from . import gdpr_request
