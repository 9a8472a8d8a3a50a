"""What the app on the phone does for its user: devices (setAPNS / logout), push config, app state."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chalicelib import clock
from chalicelib.errors import NotFound
from chalicelib.models.devices import Device, DeviceRegistration
from chalicelib.models.push_config import AppStateIn, PushConfig, PushConfigPatch
from chalicelib.services.credentials import CredentialService
from chalicelib.store.users import UserRepository

MUTED_LISTS = {"groups": "mutedGroups", "users": "mutedUsers"}


@dataclass
class UserService:
    users: UserRepository
    credentials: CredentialService
    clock_ms: Callable[[], int] = clock.now_ms

    # ---- devices -------------------------------------------------------------------------------

    def register_device(self, app_id: str, user_id: str, token: str, body: DeviceRegistration) -> Device:
        cred = self.credentials.resolve(app_id, body.certificate_id, body.certificate_name)
        device = Device(
            device_token=token,
            user_id=user_id,
            certificate_id=cred.certificate_id,
            bundle_id=cred.bundle_id,
            environment=cred.environment,
            push_enabled=body.push_enabled,
            registered_at=datetime.fromtimestamp(self.clock_ms() / 1000, UTC),
        )
        self.users.register_device(app_id, device)
        return device

    def devices(self, app_id: str, user_id: str) -> list[Device]:
        return list(self.users.get(app_id, user_id).devices)

    def logout_device(self, app_id: str, user_id: str, token: str) -> None:
        user = self.users.get(app_id, user_id)
        if all(d.device_token != token for d in user.devices):
            raise NotFound(f"device token is not registered for user '{user_id}'")
        self.users.remove_devices(app_id, user_id, [token], logged_out=len(user.devices) == 1)

    def logout_everywhere(self, app_id: str, user_id: str) -> None:
        user = self.users.get(app_id, user_id)
        self.users.remove_devices(app_id, user_id, [d.device_token for d in user.devices], logged_out=True)

    # ---- push config ---------------------------------------------------------------------------

    def config(self, app_id: str, user_id: str) -> PushConfig:
        return self.users.get(app_id, user_id).config

    def patch_config(self, app_id: str, user_id: str, patch: PushConfigPatch) -> PushConfig:
        changes: dict[str, Any] = {}
        fields = patch.model_fields_set
        for name in fields:
            value = getattr(patch, name)
            alias = PushConfigPatch.model_fields[name].alias or name
            if name == "open_push" and value is None:
                continue  # Tencent's 0: leave unchanged
            if name == "do_not_disturb" and value is not None:
                current = self.config(app_id, user_id).do_not_disturb
                # null inside doNotDisturb = leave that field unchanged (the schema allows null)
                merged = current.model_copy(update=value.model_dump(exclude_unset=True, exclude_none=True))
                # Re-validate the merged window (e.g. a new timezone with the stored hours).
                value = type(current).model_validate(merged.model_dump())
                changes[alias] = value.model_dump(mode="json", by_alias=True)
                continue
            if isinstance(value, list):
                value = sorted(set(value))
            changes[alias] = value
        self.users.write_config(app_id, user_id, changes)
        return self.config(app_id, user_id)

    def mute(self, app_id: str, user_id: str, kind: str, target: str, muted: bool) -> PushConfig:
        self.users.change_muted(app_id, user_id, MUTED_LISTS[kind], target, add=muted)
        return self.config(app_id, user_id)

    # ---- app state -----------------------------------------------------------------------------

    def app_state(self, app_id: str, user_id: str) -> dict[str, Any]:
        return self.users.get(app_id, user_id).state.dump()

    def set_app_state(self, app_id: str, user_id: str, body: AppStateIn) -> dict[str, Any]:
        now = self.clock_ms()
        if body.state == "background":
            assert body.unread_count is not None
            self.users.set_background(app_id, user_id, body.unread_count, now)
        else:
            self.users.set_foreground(app_id, user_id, now)
        state = self.users.get(app_id, user_id).state
        return state.dump()
