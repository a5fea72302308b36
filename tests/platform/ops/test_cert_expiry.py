"""The site certificate's expiry is watched (issue 57, item 9): ``CertificateWatch`` reads the
files named by MEDAI_TLS_WATCH_CERTS (and MEDAI_DICOM_TLS_CERT) at each scrape, exposes their
notAfter on /metrics, and logs a WARNING within MEDAI_TLS_WARN_DAYS of the end, once a day per
file (a fake clock drives the days). Certificates are made here with ``cryptography``."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pytest

from medai.platform.ops.metrics import DAY_S, CertificateWatch


def write_cert(path: Path, not_after: dt.datetime, cn: str = "medai.hospital.example") -> Path:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_after - dt.timedelta(days=400))
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


NOW = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)


def samples(watch: CertificateWatch) -> dict[str, dict[tuple, float]]:
    return {
        m.name: {tuple(sorted(s.labels.items())): s.value for s in m.samples}
        for m in watch.collect()
    }


def warnings(caplog) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "medai.platform.ops.metrics" and r.levelno == logging.WARNING
    ]


def test_expiry_is_a_metric_and_a_warning_30_days_before_once_a_day(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="medai.platform.ops.metrics")
    end = NOW + dt.timedelta(days=45)
    site = write_cert(tmp_path / "site.crt", end)
    clock = Clock(NOW.timestamp())
    watch = CertificateWatch([site], warn_days=30, clock=clock)

    got = samples(watch)
    key = (("path", str(site)), ("subject", "medai.hospital.example"))
    assert got["medai_tls_certificate_expiry_timestamp_seconds"][key] == end.timestamp()
    assert got["medai_tls_certificate_readable"][(("path", str(site)),)] == 1
    assert warnings(caplog) == []  # 45 days left: nothing to say yet

    clock.now += 16 * DAY_S  # 29 days left
    watch.check()
    watch.check()  # the same day: said once
    said = warnings(caplog)
    assert len(said) == 1 and "expires in 29 days" in said[0] and str(site) in said[0]
    clock.now += DAY_S  # the next day: said again
    watch.check()
    assert len(warnings(caplog)) == 2
    clock.now += 30 * DAY_S
    watch.check()
    assert "expired on" in warnings(caplog)[-1]


def test_a_missing_or_wrong_file_is_unreadable_and_said(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="medai.platform.ops.metrics")
    (tmp_path / "not.crt").write_text("not a certificate\n")
    watch = CertificateWatch(
        [tmp_path / "gone.crt", tmp_path / "not.crt"], clock=Clock(NOW.timestamp())
    )
    got = samples(watch)
    assert set(got["medai_tls_certificate_readable"].values()) == {0}
    assert got["medai_tls_certificate_expiry_timestamp_seconds"] == {}
    said = " ".join(warnings(caplog))
    assert "gone.crt cannot be read" in said and "no PEM certificate" in said


def test_the_settings_name_the_files_and_metrics_show_them(tmp_path, monkeypatch):
    from medai.server.metrics import exposition
    from medai.settings import get_settings

    site = write_cert(tmp_path / "site.crt", NOW + dt.timedelta(days=300))
    monkeypatch.setenv("MEDAI_TLS_WATCH_CERTS", f'["{site}"]')
    get_settings.cache_clear()
    try:
        watch = CertificateWatch.from_settings(get_settings())
    finally:
        monkeypatch.delenv("MEDAI_TLS_WATCH_CERTS")
        get_settings.cache_clear()
    assert watch.paths == [site] and watch.warn_days == 30
    text = exposition([watch]).decode()
    assert f'medai_tls_certificate_expiry_timestamp_seconds{{path="{site}"' in text
    assert 'medai_metrics_source_up{source="certificates"} 1.0' in text


@pytest.mark.parametrize("days", [0, 400])
def test_the_warning_threshold_is_a_setting_in_range(days):
    from pydantic import ValidationError

    from medai.settings import Settings

    with pytest.raises(ValidationError):
        Settings(tls_warn_days=days)
