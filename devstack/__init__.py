"""The local stack (`make run`): AWS emulator, resources, API, queue poller and APNs sandbox, one machine."""
