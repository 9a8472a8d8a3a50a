"""The deployed stack: what chalice packages plus the resources it cannot declare (``make package``)."""
