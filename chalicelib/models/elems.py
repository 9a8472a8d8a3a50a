"""A message's elements (Tencent's TIMElem types): what a notification shows for each (SPEC section 5)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag

from chalicelib.models.base import ApiModel
from chalicelib.models.text import MAX_TEXT, OptionalText, Text


class TextElem(ApiModel):
    type: Literal["text"] = Field(description="A text element: the notification shows the text itself.")
    text: Text = Field(min_length=1, max_length=MAX_TEXT, description=f"The text, 1-{MAX_TEXT:,} characters.")


class ImageElem(ApiModel):
    type: Literal["image"] = Field(description="An image: shown as [图片] / [image].")


class SoundElem(ApiModel):
    type: Literal["sound"] = Field(description="A voice message: shown as [语音] / [audio].")


class FileElem(ApiModel):
    type: Literal["file"] = Field(description="A file: shown as [文件] / [file].")


class VideoElem(ApiModel):
    type: Literal["video"] = Field(description="A video: shown as [视频] / [video].")


class LocationElem(ApiModel):
    type: Literal["location"] = Field(description="A location: shown as [位置] / [location].")


class FaceElem(ApiModel):
    type: Literal["face"] = Field(description="A face / sticker: shown as [表情] / [sticker].")


class CustomElem(ApiModel):
    """An app-defined element: the service cannot read it, so it needs a description to be pushed."""

    type: Literal["custom"] = Field(
        description="A custom element: shown as offlinePushInfo.desc (else this element's own desc); "
        "with neither, the message is not pushed (skip reason customWithoutDesc)."
    )
    data: OptionalText = Field(
        default=None, max_length=MAX_TEXT, description="The app's payload (opaque; never shown)."
    )
    desc: OptionalText = Field(
        default=None,
        max_length=MAX_TEXT,
        description="Tencent TIMCustomElem.desc: the text a notification shows for this element when "
        "offlinePushInfo.desc is not set (offlinePushInfo.desc wins).",
    )


ELEM_TYPES = ("text", "image", "sound", "file", "video", "location", "face", "custom")


def _elem_kind(value: Any) -> str | None:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return kind if kind in ELEM_TYPES else None


Elem = Annotated[
    Annotated[TextElem, Tag("text")]
    | Annotated[ImageElem, Tag("image")]
    | Annotated[SoundElem, Tag("sound")]
    | Annotated[FileElem, Tag("file")]
    | Annotated[VideoElem, Tag("video")]
    | Annotated[LocationElem, Tag("location")]
    | Annotated[FaceElem, Tag("face")]
    | Annotated[CustomElem, Tag("custom")],
    Discriminator(
        _elem_kind,
        custom_error_type="invalid_elem",
        custom_error_message="each element needs a type, one of: "
        + ", ".join(ELEM_TYPES)
        + ' (e.g. {"type": "text", "text": "hi"})',
    ),
]
