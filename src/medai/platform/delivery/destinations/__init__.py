"""The kinds of destination, one module each behind the ``Destination`` protocol, found in one
registry (``registry``): ``dicom`` (C-STORE), ``dicomweb`` (STOW-RS), ``fhir`` (a FHIR
transaction), ``hl7`` (ORU^R01 over MLLP). Importing the package registers the four, then the
kinds of the ``medai.destinations`` entry points (a hospital's own package: see
``medai.destinations_config.ENTRY_POINT_GROUP``)."""

from medai.destinations_config import discover as _discover
from medai.platform.delivery.destinations import dicom, dicomweb, fhir, hl7
from medai.platform.delivery.destinations.registry import (
    Destination,
    DestinationRejected,
    DestinationUnavailable,
    SendError,
    UnknownDestinationKind,
    failure_code,
    failure_reason,
    get,
    kinds,
    register,
)

_discover()

__all__ = [
    "Destination",
    "DestinationRejected",
    "DestinationUnavailable",
    "SendError",
    "UnknownDestinationKind",
    "dicom",
    "dicomweb",
    "failure_code",
    "failure_reason",
    "fhir",
    "get",
    "hl7",
    "kinds",
    "register",
]
