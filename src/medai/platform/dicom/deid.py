"""De-identification of DICOM instances that leave the hospital or go into a training set.

The DICOM PS3.15 Basic Application Level Confidentiality Profile (Table E.1-1, the newest
table `dicom-anonymizer` ships) decides what is removed, emptied or replaced; medai replaces
only the library's UID and patient-identifier actions, because the library's own UID mapping
is a module-global dictionary of random UIDs (neither thread-safe nor reproducible), and its
dates (00010101 even where the table says empty or remove) fail dciodvfy:

- UIDs become ``2.25.<UUID>`` derived by HMAC-SHA256 of the original under a site secret, so
  a study exported twice gets the same new UIDs and its series and instances stay linked;
- PatientID and PatientName become ``ANON-`` + 12 hex of an HMAC of the PatientID;
- dates and times: Z → zero length, X → removed, D → 19000101 / 000000.

The site secret is derived (HMAC with a fixed label) from the platform's current encryption
key (``MEDAI_SECRET_KEYS`` or ``MEDAI_HOME/secret.key``); it never appears in an output. There
is no mapping table: re-identification is a check made inside medai, ``pseudonym_of(id)``.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from importlib.metadata import version
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from medai import __version__
from medai.core.errors import MedaiError
from medai.platform.records.crypto import site_keys

__all__ = [
    "PROFILE_CODE",
    "DeidError",
    "Deidentifier",
    "deidentify_files",
    "pseudonym_of",
    "site_secret",
]

RULES = "dicomfields_2026c"  # the newest PS3.15 table in dicom-anonymizer 2.1
PROFILE_CODE = ("113100", "DCM", "Basic Application Confidentiality Profile")
_LABEL = b"medai de-identification v1"
_DUMMY = {"DA": "19000101", "DT": "19000101000000", "TM": "000000"}
_PATIENT_ID, _PATIENT_NAME = (0x0010, 0x0020), (0x0010, 0x0010)


class DeidError(MedaiError, ValueError):
    """A file that cannot be de-identified (not DICOM, or unreadable)."""

    code = "deid_refused"


def site_secret(keys: list[str] | None = None) -> bytes:
    """The HMAC key for UIDs and pseudonyms: derived from the platform's current encryption
    key with a fixed label, so it is kept wherever that key is and never written out."""
    keys = site_keys() if keys is None else keys
    return hmac.new(keys[0].encode(), _LABEL, hashlib.sha256).digest()


def pseudonym_of(patient_id: str, secret: bytes | None = None) -> str:
    """The pseudonym a patient's exports carry (for an authorised person inside medai to
    confirm who an exported case is; it cannot be reversed outside)."""
    return Deidentifier(secret or site_secret()).pseudonym(patient_id)


class Deidentifier:
    """Stateless apart from its secret: safe to share between threads."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the site secret must be at least 16 bytes")
        self._secret = secret

    def _mac(self, kind: bytes, value: str) -> bytes:
        return hmac.new(self._secret, kind + b"\0" + value.encode(), hashlib.sha256).digest()

    def uid(self, old: str) -> str:
        """A new UID for ``old``: the same one every time under this secret."""
        raw = bytearray(self._mac(b"uid", str(old).strip().rstrip("\0"))[:16])
        raw[6] = (raw[6] & 0x0F) | 0x80  # UUID version 8 (custom), RFC 9562 variant
        raw[8] = (raw[8] & 0x3F) | 0x80
        return f"2.25.{uuid.UUID(bytes=bytes(raw)).int}"

    def pseudonym(self, patient_id: str) -> str:
        return "ANON-" + self._mac(b"patient", str(patient_id).strip()).hex()[:12].upper()

    # --- the profile, with medai's actions for UIDs -------------------------------------
    def _map_uids(self, element) -> None:
        """A UI element gets its mapped UIDs; a sequence is left to ``_apply``'s walk over
        the items (mapping here too would map nested UIDs twice and break references)."""
        if element.VR == "UI":
            if element.VM > 1:
                element.value = [self.uid(v) for v in element.value]
            elif element.value:
                element.value = self.uid(element.value)

    def _rules(self, pseudo: str) -> dict:
        from dicomanonymizer import simpledicomanonymizer as lib

        def uid_action(dataset, tag):  # U and X/Z/U*
            element = dataset.get(tag)
            if element is not None:
                self._map_uids(element)

        def guarded(base: Callable) -> Callable:
            """The library's D-type actions give a UI (or a UI in a sequence) a random UID
            from its global dictionary: map those ourselves; a date gets a dummy dciodvfy
            accepts (the library's 00010101 is refused); the rest as the library does."""

            def action(dataset, tag):
                element = dataset.get(tag)
                if element is not None and element.VR in ("UI", "SQ"):
                    self._map_uids(element)
                elif element is not None and element.VR in _DUMMY:
                    element.value = _DUMMY[element.VR]
                else:
                    base(dataset, tag)

            return action

        def dated(base: Callable, delete: bool) -> Callable:
            """Z and X on a date or time: zero length, or removed, as Table E.1-1 says (the
            library writes 00010101 instead)."""

            def action(dataset, tag):
                element = dataset.get(tag)
                if element is None or element.VR not in _DUMMY:
                    base(dataset, tag)
                elif delete:
                    del dataset[tag]
                else:
                    element.value = ""

            return action

        def patient(dataset, tag):
            element = dataset.get(tag)
            if element is not None:
                element.value = pseudo

        rules = lib.initialize_actions(RULES)
        global_users = {
            lib.replace,
            lib.empty_or_replace,
            lib.delete_or_replace,
            lib.delete_or_empty_or_replace,
        }
        for tag, action in rules.items():
            if action in (lib.replace_UID, lib.delete_or_empty_or_replace_UID):
                rules[tag] = uid_action
            elif action in global_users:
                rules[tag] = guarded(action)
            elif action in (lib.empty, lib.delete_or_empty, lib.delete):
                rules[tag] = dated(action, delete=action is lib.delete)
        rules[_PATIENT_ID] = rules[_PATIENT_NAME] = patient
        return rules

    def _apply(self, ds: Dataset, pseudo: str) -> None:
        """The profile on ``ds``, then on the items of every sequence it keeps: PS3.15
        treats an attribute the same at any depth, and the library acts on the top level."""
        from dicomanonymizer.simpledicomanonymizer import anonymize_dataset

        anonymize_dataset(ds, delete_private_tags=True, base_rules_gen=partial(self._rules, pseudo))
        for element in ds:
            if element.VR == "SQ" and element.value:
                for item in element.value:
                    self._apply(item, pseudo)

    def dataset(self, ds: Dataset) -> Dataset:
        """De-identify ``ds`` in place (and its file meta) and mark it so; returns it."""
        from pydicom.dataset import FileMetaDataset

        pid = str(ds.get("PatientID", "") or "").strip()
        # no PatientID: a pseudonym of its own per study rather than one shared by all
        pseudo = (
            self.pseudonym(pid)
            if pid
            else self.pseudonym("study:" + str(ds.get("StudyInstanceUID", "")))
        )
        self._apply(ds, pseudo)
        ds.PatientID = ds.PatientName = pseudo
        meta = getattr(ds, "file_meta", None) or FileMetaDataset()
        if "SOPInstanceUID" in ds:
            meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        if "SOPClassUID" in ds:
            meta.MediaStorageSOPClassUID = ds.SOPClassUID
        ds.file_meta = meta
        ds.PatientIdentityRemoved = "YES"
        ds.LongitudinalTemporalInformationModified = "REMOVED"  # dates emptied or dummies
        ds.DeidentificationMethod = [
            "DICOM PS3.15 E.1 Basic Application Level Confidentiality",
            f"medai {_medai_version()}; UIDs and PatientID by site HMAC",
            f"dicom-anonymizer {version('dicom-anonymizer')} ({RULES})",
        ]
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = PROFILE_CODE
        ds.DeidentificationMethodCodeSequence = Sequence([code])
        return ds


def _medai_version() -> str:

    return __version__


def _dicom_files(sources: list[Path]) -> Iterator[Path]:
    for src in sources:
        if src.is_dir():
            yield from sorted(p for p in src.rglob("*") if p.is_file())
        else:
            yield src


def deidentify_files(
    sources: list[Path], out_dir: Path, deid: Deidentifier, forbidden: Path | None = None
) -> dict:
    """Write each DICOM of ``sources`` (files or folders) de-identified into ``out_dir`` as
    ``<new SOP Instance UID>.dcm``; non-DICOM files in a folder are skipped and counted, and
    so is an instance declaring BurnedInAnnotation YES (the Basic Profile cleans the header,
    not the pixels). Nothing else is written there (no mapping, no log of names)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    out_dir = out_dir.resolve()
    if forbidden is not None and out_dir.is_relative_to(forbidden.resolve()):
        raise DeidError("refusing to write into medai's own blob store")
    out_dir.mkdir(parents=True, exist_ok=True)
    written, skipped, burned, studies = [], 0, 0, set()
    for path in _dicom_files(sources):
        try:
            ds = pydicom.dcmread(path)
        except (InvalidDicomError, OSError, ValueError) as exc:
            if path in sources:  # named by hand: say so; found in a folder: skip
                raise DeidError(f"{path.name}: not a readable DICOM file ({exc})") from exc
            skipped += 1
            continue
        if str(ds.get("BurnedInAnnotation", "")).upper() == "YES":
            burned += 1
            continue
        try:
            deid.dataset(ds)
            target = out_dir / f"{ds.SOPInstanceUID}.dcm"
            ds.save_as(target, enforce_file_format=True)
        except Exception as exc:  # broad: pydicom raises many types; named by type only (DeidError)
            raise DeidError(
                f"{path.name}: could not be de-identified ({type(exc).__name__})"
            ) from None
        written.append(str(target))
        studies.add(str(ds.get("StudyInstanceUID", "")))
    return {
        "written": len(written),
        "skipped": skipped,
        "burned_in": burned,
        "studies": len(studies),
        "out": str(out_dir),
        "files": written,
    }
