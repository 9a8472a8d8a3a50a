"""Push credentials: validate the upload, keep secret material in Secrets Manager, metadata in DynamoDB."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chalicelib.clock import now as utc_now
from chalicelib.errors import Conflict, NotConfigured, NotFound
from chalicelib.models.credentials import Credential, P8Upload, P12Upload
from chalicelib.store.apps import AppRepository
from chalicelib.store.secrets import SecretStore

if TYPE_CHECKING:
    from cryptography import x509

    from chalicelib.apns.credentials import ValidatedCredential

# cryptography is imported only where a credential is validated: the API's cold start skips it.
EXPIRY_WARNING = timedelta(days=30)


def expires_soon(expires_at: datetime | None, now: datetime) -> bool:
    return expires_at is not None and expires_at - now <= EXPIRY_WARNING


@dataclass
class CredentialService:
    repo: AppRepository
    secrets: SecretStore
    trusted_issuers_file: Path
    clock: Callable[[], datetime] = utc_now
    _trusted: list[x509.Certificate] | None = field(default=None, repr=False)

    def upload(self, app_id: str, upload: P12Upload | P8Upload) -> Credential:
        from chalicelib.apns.credentials import validate_p8, validate_p12

        self._require_app(app_id)
        now = self.clock()
        validated = (
            validate_p12(upload, self._trusted_issuers(), now)
            if isinstance(upload, P12Upload)
            else validate_p8(upload)
        )
        if self.repo.credential_id_by_name(app_id, upload.name) is not None:
            # Checked again atomically on insert; this only avoids creating a secret for nothing.
            raise Conflict(f"a credential named '{upload.name}' already exists in this app")
        certificate_id = self.repo.next_certificate_id(app_id)
        cred = _metadata(certificate_id, upload, validated, now)
        secret_name = self.secrets.name(app_id, "credentials", str(certificate_id))
        self.secrets.put(
            secret_name,
            validated.secret,
            description=f"APNs {upload.type} credential {certificate_id} ({upload.name}) of {app_id}",
        )
        try:
            self.repo.insert_credential(app_id, cred, secret_name)
        except Exception:
            self.secrets.delete(secret_name)
            raise
        return cred

    def list_all(self, app_id: str) -> list[Credential]:
        self._require_app(app_id)
        return [self._answer(item) for item in self.repo.list_credentials(app_id)]

    def get(self, app_id: str, certificate_id: int) -> Credential:
        item = self.repo.get_credential(app_id, certificate_id)
        if item is None:
            raise NotFound(
                f"no credential {certificate_id} in app '{app_id}': list them with GET .../credentials"
            )
        return self._answer(item)

    def expiring(self, within: timedelta = EXPIRY_WARNING) -> list[tuple[str, Credential]]:
        """Every app's certificates expiring within ``within`` (or already expired): (appId, credential)."""
        now = self.clock()
        out = []
        for app_id in self.repo.app_ids():
            for cred in self.list_all(app_id):
                if cred.expires_at is not None and cred.expires_at - now <= within:
                    out.append((app_id, cred))
        return out

    def resolve(self, app_id: str, certificate_id: int | None, name: str | None) -> Credential:
        """A credential by ID or by name, as a device registration refers to it."""
        if certificate_id is None:
            assert name is not None
            found = self.repo.credential_id_by_name(app_id, name)
            if found is None:
                raise NotFound(
                    f"no credential named '{name}' in app '{app_id}': upload it first, or use certificateId"
                )
            certificate_id = found
        return self.get(app_id, certificate_id)

    def delete(self, app_id: str, certificate_id: int) -> None:
        item = self.repo.get_credential(app_id, certificate_id)
        if item is None:
            raise NotFound(f"no credential {certificate_id} in app '{app_id}'")
        self.secrets.delete(item["secretName"])
        self.repo.delete_credential(app_id, certificate_id, item["name"])

    def secret(self, app_id: str, certificate_id: int) -> dict[str, Any] | None:
        """Secret material for the send path only."""
        return self.secrets.get(self.secrets.name(app_id, "credentials", str(certificate_id)))

    def _answer(self, item: dict[str, Any]) -> Credential:
        data = {k: v for k, v in item.items() if k not in ("pk", "sk", "secretName")}
        cred = Credential.model_validate(data)
        return cred.model_copy(update={"expires_soon": expires_soon(cred.expires_at, self.clock())})

    def _require_app(self, app_id: str) -> None:
        if self.repo.get_app(app_id) is None:
            raise NotFound(f"no app '{app_id}'")

    def _trusted_issuers(self) -> list[x509.Certificate]:
        if self._trusted is None:
            from chalicelib.apns.credentials import load_trusted_issuers

            try:
                self._trusted = load_trusted_issuers(self.trusted_issuers_file.read_bytes())
            except OSError:
                self._trusted = []
        if not self._trusted:
            raise NotConfigured(
                "no trusted push-certificate issuers are configured, so .p12 uploads cannot be checked: "
                f"put Apple's WWDR CA certificates (PEM) in {self.trusted_issuers_file.name} "
                "(`make trust-apple`) or set TRUSTED_PUSH_ISSUERS_FILE"
            )
        return self._trusted


def _metadata(
    certificate_id: int, upload: P12Upload | P8Upload, v: ValidatedCredential, now: datetime
) -> Credential:
    return Credential(
        certificate_id=certificate_id,
        name=upload.name,
        type=upload.type,
        bundle_id=v.bundle_id,
        environment=v.environment,
        expires_at=v.expires_at,
        expires_soon=expires_soon(v.expires_at, now),
        created_at=now,
        key_id=upload.key_id if isinstance(upload, P8Upload) else None,
        team_id=upload.team_id if isinstance(upload, P8Upload) else None,
        subject=v.subject,
        fingerprint_sha256=v.fingerprint_sha256,
        push_types=list(v.push_types),
    )
