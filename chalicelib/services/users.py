"""What the app on the phone does for its user: devices (setAPNS / logout), push config, conversation
settings, app state; and the IM server's bulk presence reports."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chalicelib import clock
from chalicelib.errors import NotFound, ValidationFailed
from chalicelib.models.devices import Device, DeviceRegistration
from chalicelib.models.push_config import (
    MAX_UNTIL_AHEAD_S,
    AppStateIn,
    ConversationSetting,
    ConversationSettingIn,
    ConversationSettingList,
    PresenceBulk,
    PresenceResult,
    PushConfig,
    PushConfigPatch,
)
from chalicelib.services.credentials import CredentialService
from chalicelib.services.policy import in_force, muted_lists
from chalicelib.services.settings import SettingsService
from chalicelib.store.user_codec import NO_LEASE, StateWrite
from chalicelib.store.users import UserRepository

# The mute paths (muted-groups / muted-users), the PATCH fields and the old-style sets on the user item,
# all views of the `none` conversation setting.
MUTED_LISTS = {"groups": "mutedGroups", "users": "mutedUsers"}
MUTED_PATHS = {"groups": "group", "users": "c2c"}
MUTE_KINDS = {"mutedGroups": "group", "mutedUsers": "c2c"}
LEGACY_LISTS = {"group": "mutedGroups", "c2c": "mutedUsers"}


@dataclass
class UserService:
    users: UserRepository
    credentials: CredentialService
    clock_ms: Callable[[], int] = clock.now_ms
    default_lease_s: int = 300
    # The app's foregroundLeaseSeconds (None: the deployment default only, as in unit tests).
    settings: SettingsService | None = None

    # ---- devices -------------------------------------------------------------------------------

    def register_device(self, app_id: str, user_id: str, token: str, body: DeviceRegistration) -> Device:
        cred = self.credentials.resolve(app_id, body.certificate_id, body.certificate_name)
        if not cred.serves(body.type):
            raise ValidationFailed(
                f"credential {cred.certificate_id} ({cred.name}) cannot send {body.type} pushes: "
                + (
                    "a voip (PushKit) token needs a p8 key, a VoIP Services certificate or a universal "
                    "Apple Push Services certificate (its topics list <bundleId>.voip)"
                    if body.type == "voip"
                    else "it is a VoIP Services certificate; register the alert token with a p8 key or "
                    "an Apple Push Services certificate"
                )
            )
        device = Device(
            device_token=token,
            user_id=user_id,
            certificate_id=cred.certificate_id,
            bundle_id=cred.bundle_id,
            environment=cred.environment,
            push_enabled=body.push_enabled,
            type=body.type,
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
        """The stored config, with mutedGroups / mutedUsers = the `none` settings in force now."""
        config = self.users.get(app_id, user_id).config
        groups, users = muted_lists(self.users.conversations(app_id, user_id), config, self._now())
        return config.model_copy(update={"muted_groups": groups, "muted_users": users})

    def patch_config(self, app_id: str, user_id: str, patch: PushConfigPatch) -> PushConfig:
        changes: dict[str, Any] = {}
        mutes: dict[str, list[str]] = {}
        fields = patch.model_fields_set
        for name in fields:
            value = getattr(patch, name)
            alias = PushConfigPatch.model_fields[name].alias or name
            if name == "open_push" and value is None:
                continue  # Tencent's 0: leave unchanged
            if name == "do_not_disturb" and value is not None:
                current = self.users.get(app_id, user_id).config.do_not_disturb
                # null inside doNotDisturb = leave that field unchanged (the schema allows null)
                merged = current.model_copy(update=value.model_dump(exclude_unset=True, exclude_none=True))
                # Re-validate the merged window (e.g. a new timezone with the stored hours).
                value = type(current).model_validate(merged.model_dump())
                changes[alias] = value.model_dump(mode="json", by_alias=True)
                continue
            if alias in MUTE_KINDS:
                mutes[MUTE_KINDS[alias]] = sorted(set(value or ()))
                changes[alias] = None  # an old-style set on the user item goes; the CV items replace it
                continue
            if isinstance(value, list):
                value = sorted(set(value))
            changes[alias] = value
        if mutes:
            self._replace_permanent_mutes(app_id, user_id, mutes)
        self.users.write_config(app_id, user_id, changes)
        return self.config(app_id, user_id)

    def _replace_permanent_mutes(self, app_id: str, user_id: str, mutes: dict[str, list[str]]) -> None:
        """PATCH mutedGroups / mutedUsers: the listed conversations become permanent `none`; permanent
        `none` settings not listed go; timed settings and mentionOnly of unlisted ones stay."""
        stored = self.users.conversations(app_id, user_id)
        put: list[ConversationSetting] = []
        delete: list[tuple[str, str]] = []
        for kind, ids in mutes.items():
            wanted = set(ids)
            for s in stored:
                if (
                    s.kind == kind
                    and s.remind_type == "none"
                    and s.until is None
                    and s.conversation_id not in wanted
                ):
                    delete.append((kind, s.conversation_id))
            have = {
                s.conversation_id
                for s in stored
                if s.kind == kind and s.remind_type == "none" and s.until is None
            }
            put += [_setting(kind, c, "none", None) for c in ids if c not in have]
        self.users.replace_conversations(app_id, user_id, put, delete)

    def mute(self, app_id: str, user_id: str, kind: str, target: str, muted: bool) -> PushConfig:
        """PUT / DELETE muted-groups|muted-users/{id}: a permanent `none` setting, or its removal."""
        conv_kind = MUTED_PATHS[kind]
        if muted:
            self.users.put_conversation(app_id, user_id, _setting(conv_kind, target, "none", None))
        else:
            # Unmuting removes a `none` only: a mentionOnly set for that conversation stays.
            self.users.delete_conversation(app_id, user_id, conv_kind, target, only_if="none")
            self.users.forget_legacy_mute(app_id, user_id, MUTED_LISTS[kind], target)
        return self.config(app_id, user_id)

    # ---- conversation settings -----------------------------------------------------------------

    def conversation_settings(self, app_id: str, user_id: str) -> ConversationSettingList:
        now = self._now()
        user = self.users.get(app_id, user_id)
        stored = self.users.conversations(app_id, user_id)
        items = [s for s in stored if in_force(s, now)]
        known = {(s.kind, s.conversation_id) for s in stored}
        # Mutes kept the old way (sets on the user item) are permanent `none` settings.
        for kind, legacy in (("group", user.config.muted_groups), ("c2c", user.config.muted_users)):
            items += [_setting(kind, c, "none", None) for c in legacy if (kind, c) not in known]
        return ConversationSettingList(items=sorted(items, key=lambda s: (s.kind, s.conversation_id)))

    def conversation_setting(
        self, app_id: str, user_id: str, kind: str, conversation_id: str
    ) -> ConversationSetting:
        """The setting in force now; `all` (until null) when there is none."""
        for s in self.conversation_settings(app_id, user_id).items:
            if s.kind == kind and s.conversation_id == conversation_id:
                return s
        return _setting(kind, conversation_id, "all", None)

    def set_conversation(
        self, app_id: str, user_id: str, kind: str, conversation_id: str, body: ConversationSettingIn
    ) -> ConversationSetting:
        setting = _setting(kind, conversation_id, body.remind_type, body.until)
        if body.remind_type == "all":
            self.users.delete_conversation(app_id, user_id, kind, conversation_id)
        else:
            check_until(body.until, self.clock_ms() // 1000)
            self.users.put_conversation(app_id, user_id, setting)
        # The stored setting (or its absence) replaces an old-style mute of the same conversation.
        self.users.forget_legacy_mute(app_id, user_id, LEGACY_LISTS[kind], conversation_id)
        return setting

    def delete_conversation(self, app_id: str, user_id: str, kind: str, conversation_id: str) -> None:
        self.users.delete_conversation(app_id, user_id, kind, conversation_id)
        self.users.forget_legacy_mute(app_id, user_id, LEGACY_LISTS[kind], conversation_id)

    # ---- app state -----------------------------------------------------------------------------

    def app_state(self, app_id: str, user_id: str) -> dict[str, Any]:
        return self.users.get(app_id, user_id).state.dump()

    def set_app_state(self, app_id: str, user_id: str, body: AppStateIn) -> dict[str, Any]:
        write = self._state_write(user_id, body, self.clock_ms(), self._lease_s(app_id, [body]))
        self.users.put_states(app_id, [write])
        return self.users.get(app_id, user_id).state.dump()

    def set_presence(self, app_id: str, body: PresenceBulk) -> PresenceResult:
        """The IM server's view of many users at once: one state item each, BatchWriteItem calls of 25."""
        now = self.clock_ms()
        lease_s = self._lease_s(app_id, body.users)
        self.users.put_states(app_id, [self._state_write(e.user_id, e, now, lease_s) for e in body.users])
        return PresenceResult(updated=len(body.users))

    def _lease_s(self, app_id: str, reports: Sequence[AppStateIn]) -> int:
        """The app's foreground lease (0 = until background): its foregroundLeaseSeconds setting when set
        (cached: one read per app per container per 30 s, none when every report names its lease),
        else the deployment's default."""
        if self.settings is None or all(r.state == "background" or r.lease_seconds for r in reports):
            return self.default_lease_s
        app = self.settings.cached(app_id)
        if "foreground_lease_seconds" in app.model_fields_set:
            return app.foreground_lease_seconds
        return self.default_lease_s

    def _state_write(self, user_id: str, body: AppStateIn, now_ms: int, lease_s: int) -> StateWrite:
        if body.state == "background":
            assert body.unread_count is not None
            return StateWrite(user_id, "background", body.unread_count, now_ms)
        lease_s = body.lease_seconds or lease_s
        until = now_ms + lease_s * 1000 if lease_s else NO_LEASE
        # The IM server's presence may give an online user's unread count (the badge base); else 0.
        return StateWrite(user_id, "foreground", body.unread_count or 0, now_ms, until)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock_ms() / 1000, UTC)


def _setting(kind: str, conversation_id: str, remind_type: str, until: int | None) -> ConversationSetting:
    return ConversationSetting.model_validate(
        {"kind": kind, "conversationId": conversation_id, "remindType": remind_type, "until": until}
    )


def check_until(until: int | None, now_s: int) -> None:
    """``until`` must lie in the future and at most 366 days ahead (epoch seconds)."""
    if until is None:
        return
    if until >= 100_000_000_000:
        raise ValidationFailed(
            f"until {until} looks like milliseconds: send epoch seconds (e.g. {until // 1000})",
            details={"field": "until"},
        )
    if until <= now_s:
        raise ValidationFailed(
            f"until {until} is not in the future (now is {now_s}): give a later time in epoch seconds, "
            "or null for a setting that holds until changed",
            details={"field": "until"},
        )
    if until > now_s + MAX_UNTIL_AHEAD_S:
        raise ValidationFailed(
            f"until {until} is more than 366 days ahead (latest {now_s + MAX_UNTIL_AHEAD_S}): use null "
            "for a setting that holds until changed",
            details={"field": "until"},
        )
