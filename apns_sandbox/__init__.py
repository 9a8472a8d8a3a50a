"""APNs sandbox: a local stand-in for Apple's APNs servers ("Mailpit for APNs").

Development tool only, never deployed. See docs/apns-sandbox.md.
"""
