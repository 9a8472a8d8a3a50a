"""`python -m apns_sandbox`: run the APNs sandbox in the foreground (Ctrl-C stops it)."""

from .server import main

main()
