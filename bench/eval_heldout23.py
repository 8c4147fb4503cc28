"""Blind part ``heldout23``: a regional airline, Aurel Regional Airways (ARA, ``aurelair.aero``),
with its ground-handling and maintenance subsidiary Aurel Ground & Technics (AGT, an EASA Part-145
MRO, ``aurel-technics.aero``). Files are flight operations and crew scheduling systems (Spring Boot
roster services on Oracle, ACARS/SITA Type-B bridges, NOTAM and weather ingest, the crew Android
app), the booking engine (Node/TypeScript, Adyen and Stripe payments, Amadeus GDS client, a
legacy PHP travel-agency portal) and mobile apps (iOS fastlane, APNs keys, Firebase push, Mapbox
downloads), the loyalty programme (.NET points engine on SQL Server, partner APIs, OTP service in
Go, SendGrid campaigns), baggage and cargo tracking (WorldTracer sync, BSM consumers on Kafka,
RFID reader provisioning in PowerShell, AWB portal, cargo IMP/EDI partner feeds, a Rust telex
relay, a Rails rates app), aircraft maintenance records (AMOS integration, task-card exports to
SharePoint, NDT uploaders, hangar tablets, reliability notebooks), airport Wi-Fi and kiosks
(hostapd, FreeRADIUS, Cisco switch configs, captive portal, CUSS kiosk apps and Windows
unattend files, boarding-pass printers), the data warehouse (dbt, Airflow, Snowflake, Redshift,
Databricks, Spark), vendors' and contractors' repositories and handover notes, and CI and
infrastructure (GitHub Actions, GitLab CI, Jenkins, Terraform, Ansible, Helm, Kubernetes,
Argo CD, Vault, SOPS, Datadog, Alertmanager, Grafana), plus runbooks, incident tickets, chat
exports, logs and i18n bundles. Written blind (without seeing the scanner, its rules or other
parts' templates).

Look-alikes sit in the same kinds of files under the same key names: password hashes (bcrypt,
md5crypt and Cisco type 9 secrets, sha512crypt, argon2, PBKDF2, MySQL native, apr1), values
encrypted at rest (SOPS, Ansible Vault, Jasypt, AWS KMS blobs, sealed secrets, DPAPI-protected
web.config sections, Rails encrypted credentials, Jenkins encrypted values), references
to environment variables and secret stores in each language and tool, placeholders, masked and
redacted values, public material (certificates, public and SSH host keys, TLS pins, publishable
Stripe and Mapbox tokens, OAuth client ids), identifiers shaped like secrets (bag tags, e-ticket
numbers, record locators, air waybills, part and serial numbers, UUIDs, digests, lockfile
hashes), UI text about passwords, documented example credentials (AWS ``EXAMPLE`` keys, the
Azurite development key) and credentials on documentation hosts, and test values that say they
are fake.
"""

from __future__ import annotations

import base64
import hashlib
import json
import string
import uuid
import zlib

import evalset

MULTI_SLOT = True

HEX = "0123456789abcdef"
HEXU = "0123456789ABCDEF"
DIGITS = string.digits
ALNUM = string.ascii_letters + string.digits
URLSAFE = ALNUM + "-_"
UPNUM = string.ascii_uppercase + string.digits
LOWNUM = string.ascii_lowercase + string.digits
B62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
CRYPT64 = "./" + ALNUM


class Heldout23Values(evalset.Values):
    """Value generators of the heldout23 part; every name starts with ``h23_``."""

    def __init__(self, seed: int, flavour: str) -> None:
        super().__init__(seed, flavour)
        self.words = [
            "jetway",
            "apron",
            "skybridge",
            "turboprop",
            "layover",
            "altimeter",
            "aileron",
            "windsock",
            "taxiway",
            "nacelle",
            "glidepath",
            "stopover",
            "holdshort",
            "pushback",
        ]
        self.users = [
            "crewsched",
            "opsctl",
            "booking",
            "loyalty",
            "bagtrack",
            "mro_app",
            "kiosk",
            "dwh_etl",
            "cargo",
            "wifiportal",
        ]

    # ------------------------------------------------------------------ helpers (not slots)
    def h23_util_b64(self, n: int, urlsafe: bool = False, pad: bool = True) -> str:
        raw = self.rng.randbytes(n)
        text = (base64.urlsafe_b64encode(raw) if urlsafe else base64.b64encode(raw)).decode()
        return text if pad else text.rstrip("=")

    def h23_util_crc(self, prefix: str) -> str:
        body = self.s(30, ALNUM)
        crc = zlib.crc32(body.encode())
        check = ""
        while crc:
            crc, rest = divmod(crc, 62)
            check = B62[rest] + check
        return f"{prefix}_{body}{check.rjust(6, '0')}"

    def h23_util_armor(self, label: str, der: bytes) -> str:
        body = base64.b64encode(der).decode()
        rows = [body[i : i + 64] for i in range(0, len(body), 64)]
        return f"-----BEGIN {label}-----\n" + "\n".join(rows) + f"\n-----END {label}-----"

    def h23_util_aws(self) -> tuple[str, str]:
        key_id = "AKIA" + self.s(16, string.ascii_uppercase + "234567")
        secret = self.s(1, ALNUM) + self.s(39, ALNUM + "/+")
        return key_id, secret

    # ------------------------------------------------------------------ positives: passwords
    def h23_pw(self) -> str:
        shape = self.rng.randrange(6)
        word = self.pick(self.words)
        if shape == 0:
            return word.capitalize() + str(self.rng.randrange(10, 9999)) + self.pick(list("!#%*+"))
        if shape == 1:
            return self.s(1, string.ascii_letters) + self.s(
                self.rng.randrange(12, 20), ALNUM + "!#%^*-_=+."
            )
        if shape == 2:
            other = self.pick([w for w in self.words if w != word])
            return f"{word.capitalize()}-{other.capitalize()}-{self.s(2, DIGITS)}"
        if shape == 3:
            return "Ar" + self.s(11, ALNUM) + self.pick(list("!#%$"))
        if shape == 4:
            return self.s(18, ALNUM)
        leet = word[1:].replace("a", "@").replace("o", "0").replace("i", "1")
        return word[0].upper() + leet + "$" + self.s(3, DIGITS)

    def h23_weak_pw(self) -> str:
        shape = self.rng.randrange(4)
        if shape == 0:
            return self.pick(
                [
                    "Welcome1!",
                    "Password123",
                    "Aurel2024",
                    "aurel123",
                    "Kiosk1234",
                    "Hangar01",
                    "Qwerty!23",
                    "Admin@123",
                    "Boarding1",
                ]
            )
        if shape == 1:
            return "Aurel" + str(self.rng.randrange(2016, 2026)) + self.pick(["", "!", "#", "$"])
        if shape == 2:
            return self.pick(self.words) + self.pick(["1", "123", "2025", "!", "01"])
        return self.pick(["Winter", "Summer", "Spring", "Autumn"]) + str(
            self.rng.randrange(2020, 2026)
        )

    def h23_url_pw(self) -> str:
        if self.rng.randrange(2):
            return self.pick(self.words).capitalize() + self.s(5, DIGITS)
        return self.s(1, string.ascii_letters) + self.s(self.rng.randrange(14, 24), ALNUM + "-_.~")

    def h23_db_pw(self) -> str:
        body = self.s(1, string.ascii_uppercase) + self.s(self.rng.randrange(10, 16), ALNUM)
        cut = self.rng.randrange(3, len(body))
        return body[:cut] + self.pick(["#", "_", "$", "_"]) + body[cut:] + self.s(2, DIGITS)

    def h23_basic_b64(self) -> str:
        user = self.pick([*self.users, "svc-ci", "ara-deploy", "agt.integration"])
        return base64.b64encode(f"{user}:{self.h23_pw()}".encode()).decode()

    def h23_wifi_psk(self) -> str:
        shape = self.rng.randrange(3)
        if shape == 0:
            return "-".join(self.pick(self.words).capitalize() for _ in range(3)) + self.s(
                2, DIGITS
            )
        if shape == 1:
            return self.s(1, ALNUM) + self.s(self.rng.randrange(15, 27), ALNUM + "!#%+=")
        return "ARA" + self.pick(["crew", "ops", "hangar", "staff"]) + self.s(10, ALNUM)

    def h23_radius_secret(self) -> str:
        return self.s(1, string.ascii_letters) + self.s(self.rng.randrange(17, 29), ALNUM + "!#%+")

    def h23_snmp_community(self) -> str:
        if self.rng.randrange(2):
            return self.s(16, ALNUM)
        return "ara" + self.pick(self.words) + self.s(5, ALNUM)

    # ------------------------------------------------------------------ positives: tokens and keys
    def h23_api_key(self) -> str:
        shape = self.rng.randrange(4)
        if shape == 0:
            return self.s(32, ALNUM)
        if shape == 1:
            return self.s(40, HEX)
        if shape == 2:
            return self.s(44, URLSAFE)
        return self.s(8, HEX) + self.s(24, ALNUM)

    def h23_amadeus_secret(self) -> str:
        return self.s(16, ALNUM)

    def h23_github(self) -> str:
        return self.h23_util_crc(self.pick(["ghp", "ghp", "ghp", "gho"]))

    def h23_github_fine(self) -> str:
        return f"github_pat_11{self.s(20, UPNUM)}_{self.s(59, ALNUM)}"

    def h23_gitlab(self) -> str:
        return "glpat-" + self.s(20, URLSAFE)

    def h23_npm(self) -> str:
        return self.h23_util_crc("npm")

    def h23_slack_bot(self) -> str:
        return f"xoxb-{self.s(12, DIGITS)}-{self.s(13, DIGITS)}-{self.s(24, ALNUM)}"

    def h23_slack_webhook(self) -> str:
        return (
            f"https://hooks.slack.com/services/T{self.s(10, UPNUM)}/B{self.s(10, UPNUM)}/"
            f"{self.s(24, ALNUM)}"
        )

    def h23_teams_webhook(self) -> str:
        ids = [str(uuid.UUID(int=self.rng.getrandbits(128), version=4)) for _ in range(3)]
        return (
            f"https://aurelair.webhook.office.com/webhookb2/{ids[0]}@{ids[1]}/IncomingWebhook/"
            f"{self.s(32, HEX)}/{ids[2]}/V2{self.s(43, URLSAFE)}"
        )

    def h23_stripe_live(self) -> str:
        if self.rng.randrange(2):
            return "sk_live_" + self.s(24, ALNUM)
        return "sk_live_51" + self.s(97, ALNUM)

    def h23_sendgrid(self) -> str:
        return f"SG.{self.s(22, URLSAFE)}.{self.s(43, URLSAFE)}"

    def h23_twilio_token(self) -> str:
        return self.s(32, HEX)

    def h23_google_key(self) -> str:
        return "AIza" + self.s(35, URLSAFE)

    def h23_fcm_server_key(self) -> str:
        return "AAAA" + self.s(7, URLSAFE) + ":APA91b" + self.s(134, URLSAFE)

    def h23_mapbox_secret(self) -> str:
        claims = {"u": self.pick(["aurelair", "ara-mobile", "aurel-ops"]), "a": self.s(25, LOWNUM)}
        head = base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode())
        return "sk." + head.decode().rstrip("=") + "." + self.s(22, URLSAFE)

    def h23_adyen_key(self) -> str:
        return (
            "AQE"
            + self.s(90, ALNUM + "+/")
            + "==-"
            + self.h23_util_b64(32)
            + "-"
            + self.s(16, ALNUM + "%;:<>)(")
        )

    def h23_datadog_key(self) -> str:
        return self.s(32, HEX)

    def h23_pagerduty_key(self) -> str:
        return self.s(32, HEX)

    def h23_newrelic(self) -> str:
        return self.s(36, HEX) + "NRAL"

    def h23_opsgenie(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def h23_jenkins_token(self) -> str:
        return "11" + self.s(32, HEX)

    def h23_octopus(self) -> str:
        return "API-" + self.s(27, UPNUM)

    def h23_sonar(self) -> str:
        return self.pick(["squ_", "sqp_", "sqa_"]) + self.s(40, HEX)

    def h23_nuget(self) -> str:
        return "oy2" + self.s(43, LOWNUM)

    def h23_artifactory(self) -> str:
        return "AKCp8" + self.s(68, ALNUM)

    def h23_docker_pat(self) -> str:
        return "dckr_pat_" + self.s(27, URLSAFE)

    def h23_databricks(self) -> str:
        return "dapi" + self.s(32, HEX)

    def h23_pypi(self) -> str:
        return "pypi-AgEIcHlwaS5vcmc" + self.s(140, URLSAFE)

    def h23_tfc_token(self) -> str:
        return f"{self.s(14, ALNUM)}.atlasv1.{self.s(67, ALNUM)}"

    def h23_vault_token(self) -> str:
        if self.rng.randrange(2):
            return "hvs." + self.s(24, ALNUM)
        return "hvs.CAESI" + self.s(86, URLSAFE)

    def h23_age_key(self) -> str:
        return "AGE-SECRET-KEY-1" + self.s(58, "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L")

    def h23_atlassian(self) -> str:
        return "ATATT3xFfGF0" + self.s(171, URLSAFE) + "=" + self.s(8, HEXU)

    def h23_grafana(self) -> str:
        return f"glsa_{self.s(32, ALNUM)}_{self.s(8, HEX)}"

    def h23_openai(self) -> str:
        return f"sk-proj-{self.s(58, URLSAFE)}T3BlbkFJ{self.s(58, URLSAFE)}"

    def h23_telegram(self) -> str:
        return f"{self.rng.randrange(10**9, 10**10)}:AA{self.s(33, URLSAFE)}"

    def h23_azure_storage_key(self) -> str:
        return self.h23_util_b64(64)

    def h23_azure_client_secret(self) -> str:
        return self.s(3, ALNUM + "_~.") + self.s(1, DIGITS) + "Q~" + self.s(34, ALNUM + "_~.-")

    def h23_fernet(self) -> str:
        return self.h23_util_b64(32, urlsafe=True)

    def h23_laravel_key(self) -> str:
        return "base64:" + self.h23_util_b64(32)

    def h23_rails_secret(self) -> str:
        return self.s(128, HEX)

    def h23_django_key(self) -> str:
        return self.s(50, string.ascii_lowercase + DIGITS + "!@#%^&*(-_=+)")

    def h23_hmac_hex(self) -> str:
        return self.s(64, HEX)

    def h23_jwt_secret(self) -> str:
        shape = self.rng.randrange(3)
        if shape == 0:
            return self.s(48, ALNUM)
        if shape == 1:
            return self.h23_util_b64(48)
        return self.s(64, HEX)

    def h23_jwt_token(self) -> str:
        def part(obj: dict[str, object]) -> str:
            raw = json.dumps(obj, separators=(",", ":")).encode()
            return base64.urlsafe_b64encode(raw).decode().rstrip("=")

        now = 1760000000 + self.rng.randrange(10**7)
        header = part({"alg": self.pick(["HS256", "RS256"]), "typ": "JWT"})
        payload = part(
            {
                "sub": self.pick(self.users) + "-" + self.s(6, DIGITS),
                "iss": "https://auth.aurelair.aero",
                "scope": self.pick(["booking:write", "crew:read roster:write", "ops:admin"]),
                "iat": now,
                "exp": now + 3600,
            }
        )
        return f"{header}.{payload}.{self.h23_util_b64(32, urlsafe=True, pad=False)}"

    def h23_gcp_sa_pk(self) -> str:
        pem = self.h23_util_armor("PRIVATE KEY", self.rng.randbytes(1218))
        return pem.replace("\n", "\\n") + "\\n"

    def h23_rsa_pem(self) -> str:
        return self.h23_util_armor(
            "RSA PRIVATE KEY", b"\x30\x82\x04\xa4\x02\x01\x00" + self.rng.randbytes(1185)
        )

    def h23_pkcs8_pem(self) -> str:
        return self.h23_util_armor(
            "PRIVATE KEY", b"\x30\x82\x04\xbe\x02\x01\x00" + self.rng.randbytes(1211)
        )

    def h23_openssh_pem(self) -> str:
        der = b"openssh-key-v1\x00\x00\x00\x00\x04none\x00\x00\x00\x04none" + self.rng.randbytes(
            360
        )
        return self.h23_util_armor("OPENSSH PRIVATE KEY", der)

    def h23_p8_key(self) -> str:
        return self.h23_util_armor(
            "PRIVATE KEY", b"\x30\x81\x93\x02\x01\x00\x30\x13" + self.rng.randbytes(142)
        )

    def h23_aws_ini_pair(self) -> str:
        key_id, secret = self.h23_util_aws()
        return f"aws_access_key_id = {key_id}\naws_secret_access_key = {secret}"

    def h23_aws_yaml_pair(self) -> str:
        key_id, secret = self.h23_util_aws()
        return f"AWS_ACCESS_KEY_ID: {key_id}\nAWS_SECRET_ACCESS_KEY: {secret}"

    def h23_aws_tf_pair(self) -> str:
        key_id, secret = self.h23_util_aws()
        return f'access_key = "{key_id}"\n  secret_key = "{secret}"'

    def h23_aws_redshift(self) -> str:
        key_id, secret = self.h23_util_aws()
        return f"aws_access_key_id={key_id};aws_secret_access_key={secret}"

    # ------------------------------------------------------------------ negatives: hashes
    def h23_bcrypt(self) -> str:
        return (
            f"$2{self.pick(['a', 'b', 'y'])}${self.pick(['10', '11', '12'])}${self.s(53, CRYPT64)}"
        )

    def h23_md5crypt(self) -> str:
        return f"$1${self.s(4, CRYPT64)}${self.s(22, CRYPT64)}"

    def h23_cisco9(self) -> str:
        return f"$9${self.s(14, CRYPT64)}${self.s(43, CRYPT64)}"

    def h23_sha512crypt(self) -> str:
        return f"$6${self.s(16, CRYPT64)}${self.s(86, CRYPT64)}"

    def h23_argon2(self) -> str:
        salt = self.h23_util_b64(16, pad=False)
        return f"$argon2id$v=19$m=65536,t=3,p=4${salt}${self.h23_util_b64(32, pad=False)}"

    def h23_pbkdf2(self) -> str:
        shape = self.rng.randrange(2)
        if shape == 0:
            return f"pbkdf2_sha256$720000${self.s(22, ALNUM)}${self.h23_util_b64(32)}"
        return f"AQAAAAIAAYagAAAAE{self.s(67, ALNUM + '+/')}=="

    def h23_mysql_hash(self) -> str:
        return "*" + self.s(40, HEXU)

    def h23_apr1(self) -> str:
        return f"$apr1${self.s(8, CRYPT64)}${self.s(22, CRYPT64)}"

    def h23_sha256(self) -> str:
        return hashlib.sha256(self.rng.randbytes(24)).hexdigest()

    def h23_sri(self) -> str:
        return "sha512-" + self.h23_util_b64(64)

    def h23_tf_hash(self) -> str:
        if self.rng.randrange(3):
            return "h1:" + self.h23_util_b64(32)
        return "zh:" + self.s(64, HEX)

    # ------------------------------------------------------------------ negatives: encrypted
    def h23_sops(self) -> str:
        data = self.h23_util_b64(self.rng.randrange(12, 48))
        iv = self.h23_util_b64(32)
        tag = self.h23_util_b64(16)
        return f"ENC[AES256_GCM,data:{data},iv:{iv},tag:{tag},type:str]"

    def h23_ansible_vault(self) -> str:
        body = self.s(80 * 5 + 42, HEX)
        rows = [body[i : i + 80] for i in range(0, len(body), 80)]
        return "$ANSIBLE_VAULT;1.1;AES256\n" + "\n".join(rows)

    def h23_jasypt(self) -> str:
        return "ENC(" + self.h23_util_b64(self.rng.choice([24, 32, 48])) + ")"

    def h23_kms_blob(self) -> str:
        return "AQICAHh" + self.s(50, ALNUM + "+/") + self.h23_util_b64(120)

    def h23_sealed(self) -> str:
        return "AgB" + self.h23_util_b64(self.rng.choice([420, 540]))

    def h23_dpapi(self) -> str:
        return self.h23_util_b64(self.rng.choice([180, 252, 300]))

    def h23_rails_enc(self) -> str:
        return f"{self.h23_util_b64(210)}--{self.h23_util_b64(12)}--{self.h23_util_b64(16)}"

    def h23_jenkins_enc(self) -> str:
        return "{AQAAABAAAAAQ" + self.h23_util_b64(36) + "}"

    # ------------------------------------------------------------------ negatives: public material
    def h23_cert(self) -> str:
        return self.h23_util_armor(
            "CERTIFICATE", b"\x30\x82\x05\x12\x30\x82\x03\xfa\xa0\x03" + self.rng.randbytes(710)
        )

    def h23_public_pem(self) -> str:
        return self.h23_util_armor(
            "PUBLIC KEY", b"\x30\x82\x01\x22\x30\x0d\x06\x09" + self.rng.randbytes(286)
        )

    def h23_ssh_pub(self) -> str:
        body = base64.b64encode(
            b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + self.rng.randbytes(32)
        )
        who = self.pick(["j.okafor", "m.lindqvist", "deploy", "r.castellanos", "ci-runner"])
        return f"ssh-ed25519 {body.decode()} {who}@{self.pick(['aurelair.aero', 'agt-laptop', 'bastion'])}"

    def h23_ssh_hostkey(self) -> str:
        body = base64.b64encode(
            b"\x00\x00\x00\x13ecdsa-sha2-nistp256\x00\x00\x00\x08nistp256\x00\x00\x00\x41\x04"
            + self.rng.randbytes(64)
        )
        return f"ecdsa-sha2-nistp256 {body.decode()}"

    def h23_tls_pin(self) -> str:
        return "sha256/" + self.h23_util_b64(32)

    def h23_stripe_pk(self) -> str:
        return self.pick(["pk_live_", "pk_live_51", "pk_test_"]) + self.s(
            self.rng.choice([24, 97]), ALNUM
        )

    def h23_mapbox_pk(self) -> str:
        claims = {"u": self.pick(["aurelair", "ara-mobile"]), "a": self.s(25, LOWNUM)}
        head = base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode())
        return "pk." + head.decode().rstrip("=") + "." + self.s(22, URLSAFE)

    def h23_google_client_id(self) -> str:
        return f"{self.s(12, DIGITS)}-{self.s(32, LOWNUM)}.apps.googleusercontent.com"

    # ------------------------------------------------------------------ negatives: identifiers
    def h23_bagtag(self) -> str:
        return "0" + self.pick(["714", "714", "220", "057"]) + self.s(6, DIGITS)

    def h23_ticket_no(self) -> str:
        return self.pick(["714", "714", "220"]) + self.s(10, DIGITS)

    def h23_pnr(self) -> str:
        return self.s(6, "ABCDEFGHJKLMNPQRSTUVWXYZ23456789")

    def h23_part_serial(self) -> str:
        shape = self.rng.randrange(3)
        if shape == 0:
            return f"{self.s(3, DIGITS)}-{self.s(5, DIGITS)}-{self.s(3, DIGITS)}"
        if shape == 1:
            return "SN" + self.s(10, UPNUM)
        return f"D{self.s(5, DIGITS)}{self.s(4, UPNUM)}"

    def h23_uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def h23_awb(self) -> str:
        serial = self.rng.randrange(10**6, 10**7)
        return f"714-{serial}{serial % 7}"

    # ------------------------------------------------------------------ negatives: references
    def h23_ref_spring(self) -> str:
        return self.pick(
            [
                "${CREW_DB_PASSWORD}",
                "${ORACLE_PASSWORD:}",
                "${vault.crew.db-password}",
                "${sftp.password}",
            ]
        )

    def h23_ref_py(self) -> str:
        return self.pick(
            [
                'os.environ[\\"SNOWFLAKE_PASSWORD\\"]',
                'getpass.getpass(\\"Snowflake password: \\")',
                'os.getenv(\\"SNOWFLAKE_PASSWORD\\")',
                'keyring.get_password(\\"snowflake\\", \\"AGT_RELIABILITY\\")',
            ]
        )

    def h23_ref_js(self) -> str:
        return self.pick(
            [
                "process.env.ADYEN_API_KEY!",
                'requireEnv("ADYEN_API_KEY")',
                'await secrets.get("booking/adyen-api-key")',
                'config.get<string>("payments.adyenApiKey")',
            ]
        )

    def h23_ref_go(self) -> str:
        return self.pick(
            [
                'os.Getenv("TWILIO_AUTH_TOKEN")',
                "cfg.Twilio.AuthToken",
                'viper.GetString("twilio.token")',
            ]
        )

    def h23_ref_cs(self) -> str:
        return self.pick(
            [
                'configuration["Partners:HmacKeyHex"] ?? string.Empty',
                'Environment.GetEnvironmentVariable("PARTNER_HMAC_KEY") ?? string.Empty',
                'secretClient.GetSecret("partner-hmac-key").Value.Value',
            ]
        )

    def h23_ref_php(self) -> str:
        return self.pick(["env('DB_PASSWORD')", "getenv('AGENCY_DB_PASS')", "$_ENV['DB_PASSWORD']"])

    def h23_ref_ps(self) -> str:
        return self.pick(
            [
                "$env:READER_ADMIN_PASSWORD",
                "(Get-Secret -Name RfidReaderAdmin -AsPlainText)",
                "(Get-AzKeyVaultSecret -VaultName kv-ara-bag -Name rfid-admin -AsPlainText)",
            ]
        )

    def h23_ref_ci(self) -> str:
        return self.pick(
            [
                "${{ secrets.DOCKERHUB_TOKEN }}",
                "${{ secrets.REGISTRY_PASSWORD }}",
                "${{ secrets.DOCKERHUB_PAT }}",
            ]
        )

    def h23_ref_tf(self) -> str:
        return self.pick(
            [
                "random_password.crew_db.result",
                "var.crew_db_password",
                "data.aws_secretsmanager_secret_version.crew_db.secret_string",
                'data.vault_kv_secret_v2.crew.data["password"]',
            ]
        )

    def h23_ref_dbt(self) -> str:
        return self.pick(
            [
                "\"{{ env_var('SNOWFLAKE_PASSWORD') }}\"",
                "\"{{ env_var('DBT_ENV_SECRET_SNOWFLAKE_PW') }}\"",
            ]
        )

    def h23_ref_grafana(self) -> str:
        return self.pick(
            ["$__file{/etc/secrets/pg_password}", "$__env{GF_PG_PASSWORD}", "${PG_PASSWORD}"]
        )

    def h23_ref_ruby(self) -> str:
        return self.pick(
            [
                "<%= ENV['RATES_DB_PASSWORD'] %>",
                "<%= ENV.fetch('RATES_DB_PASSWORD') %>",
                "<%= Rails.application.credentials.dig(:db, :password) %>",
            ]
        )

    def h23_ref_sh(self) -> str:
        return self.pick(
            [
                '"$(vault kv get -field=password secret/agt/records-db)"',
                '"$(cat /run/secrets/pg_password)"',
                '"${PGPASSWORD:?set PGPASSWORD}"',
                '"$(aws ssm get-parameter --with-decryption --name /agt/records/pg --query Parameter.Value --output text)"',
            ]
        )

    def h23_op_ref(self) -> str:
        return self.pick(
            [
                "op://NetOps/Lounge Wi-Fi GOT/password",
                "secret/netops/wifi/lounge-psk",
                "Keeper: NetOps / Lounge PSK (all stations)",
                "https://kv-ara-netops.vault.azure.net/secrets/lounge-psk",
            ]
        )

    def h23_secret_name(self) -> str:
        return self.pick(["booking-redis-auth", "booking-api-redis", "redis-booking-credentials"])

    # ------------------------------------------------------------------ negatives: placeholders, fakes
    def h23_placeholder(self) -> str:
        return self.pick(
            [
                "changeme",
                "<your SITA password>",
                "__DB_PASSWORD__",
                "#{CrewDbPassword}#",
                "********",
                "REPLACE_ME",
                "<set-in-vault>",
                "${SECRET}",
                "TBD",
                "xxxxxxxx",
            ]
        )

    def h23_doc_placeholder(self) -> str:
        return self.pick(
            [
                "<ACCESS_TOKEN>",
                "YOUR_API_KEY",
                "eyJhbGciOi...",
                "$TOKEN",
                "sk_live_...",
                "<paste token here>",
                "{{api_key}}",
            ]
        )

    def h23_fake_token(self) -> str:
        return self.pick(
            [
                "test-key-not-real",
                "fake-key-for-unit-tests",
                "dummy-secret",
                "FAKE-TOKEN-0000",
                "not-a-real-key",
                "unit-test-only",
            ]
        )

    def h23_masked(self) -> str:
        return self.pick(
            ["****", "[REDACTED]", "<masked>", "***redacted***", "••••••••", "[FILTERED]"]
        )

    def h23_doc_pw(self) -> str:
        return self.pick(self.words) + self.s(2, DIGITS)

    def h23_aws_example_pair(self) -> str:
        return (
            "aws_access_key_id = AKIAIOSFODNN7EXAMPLE\n"
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
        )

    def h23_azurite_key(self) -> str:
        return "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

    def h23_ui_sv(self) -> str:
        return self.pick(
            [
                "Fel lösenord, försök igen",
                "Lösenordet måste innehålla minst 10 tecken",
                "Ditt lösenord har gått ut",
            ]
        )

    def h23_ui_fr(self) -> str:
        return self.pick(
            [
                "Mot de passe incorrect. Veuillez réessayer.",
                "Identifiant ou mot de passe invalide",
                "Votre mot de passe a expiré",
            ]
        )

    def h23_pw_policy(self) -> str:
        return self.pick(["10", "12", "14", "16"])


VALUES = Heldout23Values

TEMPLATES: list[evalset.Template] = [
    # ================================================================ flight ops and crew scheduling
    (
        "crew-scheduler/src/main/resources/application-prod.yml",
        r"""spring:
  application:
    name: crew-scheduler
  datasource:
    url: jdbc:oracle:thin:@//ora-crew-prod.int.aurelair.aero:1521/CREWPDB
    username: CREW_APP
    password: {V}
    hikari:
      maximum-pool-size: 20
      connection-timeout: 30000
  jpa:
    hibernate:
      ddl-auto: validate
    properties:
      hibernate.jdbc.time_zone: UTC

crew:
  roster:
    publish-window-days: 28
    fatigue-model: EASA-FTL
  union-portal:
    base-url: https://portal.ara-pilots-union.org/api
""",
        "h23_db_pw",
        True,
    ),
    (
        "crew-scheduler/src/main/resources/application.yml",
        r"""spring:
  profiles:
    active: ${SPRING_PROFILES_ACTIVE:local}
  datasource:
    url: ${CREW_DB_URL:jdbc:oracle:thin:@//localhost:1521/XEPDB1}
    username: ${CREW_DB_USER:CREW_APP}
    password: {V}
  flyway:
    enabled: true
    locations: classpath:db/migration

management:
  endpoints:
    web:
      exposure:
        include: health,info,prometheus
""",
        "h23_ref_spring",
        False,
    ),
    (
        "crew-scheduler/docker-compose.yml",
        r"""services:
  oracle:
    image: gvenzl/oracle-free:23-slim
    ports:
      - "1521:1521"
    environment:
      ORACLE_PASSWORD: {V}
      APP_USER: CREW_APP
      APP_USER_PASSWORD: {V2}
    volumes:
      - oradata:/opt/oracle/oradata

  crew-scheduler:
    build: .
    depends_on:
      - oracle
    environment:
      SPRING_PROFILES_ACTIVE: docker
      CREW_DB_URL: jdbc:oracle:thin:@//oracle:1521/FREEPDB1
      CREW_DB_USER: CREW_APP
      CREW_DB_PASSWORD: {V2}
    ports:
      - "8080:8080"

volumes:
  oradata:
""",
        "h23_pw",
        True,
    ),
    (
        "flightops/acars-bridge/config.ini",
        r"""; ACARS / SITA Type-B bridge - production
[general]
log_level = INFO
station = ARNOPXH
queue_dir = /var/spool/acars-bridge

[sita]
host = typeb-gw.sita.aero
port = 8443
originator = ARNOPXH
username = ARA_OPS_TB
password = {V}
retry_seconds = 30

[ops_db]
dsn = postgresql://acars@pg-flightops.int.aurelair.aero:5432/flightops
""",
        "h23_pw",
        True,
    ),
    (
        "flightops/acars-bridge/config.sample.ini",
        r"""; Copy to config.ini and fill in. Do not commit config.ini.
[general]
log_level = DEBUG
station = ARNOPXH
queue_dir = ./spool

[sita]
host = typeb-gw.sita.aero
port = 8443
originator = ARNOPXH
username = ARA_OPS_TB
password = {V}
retry_seconds = 30
""",
        "h23_placeholder",
        False,
    ),
    (
        "crew-scheduler/src/main/java/aero/aurelair/crew/export/RosterExportJob.java",
        r"""package aero.aurelair.crew.export;

import com.jcraft.jsch.ChannelSftp;
import com.jcraft.jsch.JSch;
import com.jcraft.jsch.Session;
import java.io.InputStream;
import org.springframework.scheduling.annotation.Scheduled;
import org.springframework.stereotype.Component;

@Component
public class RosterExportJob {

    private static final String HOST = "sftp.ara-pilots-union.org";
    private static final String USER = "aurel_rosters";
    private static final String PASSWORD = "{V}";

    private final RosterCsvWriter writer;

    public RosterExportJob(RosterCsvWriter writer) {
        this.writer = writer;
    }

    @Scheduled(cron = "0 15 2 * * *", zone = "Europe/Stockholm")
    public void export() throws Exception {
        JSch jsch = new JSch();
        Session session = jsch.getSession(USER, HOST, 22);
        session.setPassword(PASSWORD);
        session.setConfig("StrictHostKeyChecking", "yes");
        session.connect(15_000);
        ChannelSftp sftp = (ChannelSftp) session.openChannel("sftp");
        sftp.connect();
        try (InputStream csv = writer.publishedRosters()) {
            sftp.put(csv, "/incoming/aurel/rosters.csv");
        } finally {
            sftp.disconnect();
            session.disconnect();
        }
    }
}
""",
        "h23_pw",
        True,
    ),
    (
        "flightops/scripts/load_notams.sh",
        r"""#!/usr/bin/env bash
# Pulls NOTAMs for the ARA network from the EAD mirror and loads them into flightops.
set -euo pipefail

OUT=/var/lib/flightops/notam/$(date -u +%Y%m%dT%H%M).xml
mkdir -p "$(dirname "$OUT")"

curl -sS --fail -u "ara_notam:{V}" \
  "https://ead-mirror.int.aurelair.aero/notam/v1/query?fir=ESAA,ENOR,EKDK&format=aixm" \
  -o "$OUT"

python3 /opt/flightops/bin/notam_load.py "$OUT"
find /var/lib/flightops/notam -mtime +7 -delete
""",
        "h23_url_pw",
        True,
    ),
    (
        "crew-scheduler/docs/runbooks/oracle-failover.md",
        r"""# Crew DB: Data Guard switchover

Owner: Crew Systems (on-call rota in PagerDuty "crew-systems").

1. Check the broker is healthy:

   ```
   dgmgrl sys/{V}@ora-crew-prod.int.aurelair.aero:1521/CREWPDB "show configuration"
   ```

2. Stop the roster publisher (`systemctl stop crew-scheduler` on crew-app01/02).
3. Switch over:

   ```
   dgmgrl sys/{V}@ora-crew-prod.int.aurelair.aero:1521/CREWPDB "switchover to crewdb_stby"
   ```

4. Update the DNS CNAME `ora-crew-prod` to the new primary and start the scheduler again.
5. Post in #ops-crew-systems when done.
""",
        "h23_db_pw",
        True,
    ),
    (
        "crew-scheduler/src/main/resources/db/migration/V3__crew_portal_users.sql",
        r"""CREATE TABLE portal_user (
    id            NUMBER GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    employee_no   VARCHAR2(8)   NOT NULL UNIQUE,
    email         VARCHAR2(200) NOT NULL,
    password_hash VARCHAR2(100) NOT NULL,
    role          VARCHAR2(20)  DEFAULT 'CREW' NOT NULL,
    created_at    TIMESTAMP     DEFAULT SYSTIMESTAMP
);

-- bootstrap accounts; passwords are reset on first login
INSERT INTO portal_user (employee_no, email, password_hash, role)
VALUES ('A0001', 'crew.control@aurelair.aero', '{V}', 'ADMIN');
INSERT INTO portal_user (employee_no, email, password_hash, role)
VALUES ('A0002', 'rostering@aurelair.aero', '{V2}', 'PLANNER');
""",
        "h23_bcrypt",
        False,
    ),
    (
        "flightops/fuel-planning/fuel_client.go",
        r"""package fuelplanning

import (
	"context"
	"net/http"
	"time"
)

const (
	baseURL = "https://api.skyfuel-partners.com/v2"
	apiKey  = "{V}"
)

type Client struct {
	http *http.Client
}

func New() *Client {
	return &Client{http: &http.Client{Timeout: 20 * time.Second}}
}

func (c *Client) Uplift(ctx context.Context, station string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/uplift?station="+station, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-Api-Key", apiKey)
	return c.http.Do(req)
}
""",
        "h23_api_key",
        True,
    ),
    (
        "flightops/fuel-planning/fuel_client_test.go",
        r"""package fuelplanning

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

const testAPIKey = "{V}"

func TestUpliftSendsKey(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if got := r.Header.Get("X-Api-Key"); got != testAPIKey {
			t.Fatalf("key = %q", got)
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
}
""",
        "h23_fake_token",
        False,
    ),
    (
        "crew-app/android/app/build.gradle.kts",
        r"""plugins {
    id("com.android.application")
    id("org.jetbrains.kotlin.android")
}

android {
    namespace = "aero.aurelair.crew"
    compileSdk = 34

    defaultConfig {
        applicationId = "aero.aurelair.crew"
        minSdk = 28
        targetSdk = 34
        versionCode = 412
        versionName = "4.12.0"
    }

    signingConfigs {
        create("release") {
            storeFile = file("../keystores/ara-crew-release.jks")
            storePassword = "{V}"
            keyAlias = "ara-crew"
            keyPassword = "{V}"
        }
    }

    buildTypes {
        release {
            isMinifyEnabled = true
            signingConfig = signingConfigs.getByName("release")
        }
    }
}
""",
        "h23_pw",
        True,
    ),
    (
        "crew-app/android/app/src/main/res/values-sv/strings.xml",
        r"""<?xml version="1.0" encoding="utf-8"?>
<resources>
    <string name="app_name">ARA Crew</string>
    <string name="login_title">Logga in med ditt anställningsnummer</string>
    <string name="login_password_hint">Lösenord</string>
    <string name="login_password_error">{V}</string>
    <string name="roster_empty">Inga uppdrag publicerade</string>
</resources>
""",
        "h23_ui_sv",
        False,
    ),
]

TEMPLATES += [
    # ================================================================ booking engine and mobile apps
    (
        "booking-engine/.env.production",
        r"""APP_ENV=production
PUBLIC_BASE_URL=https://book.aurelair.aero
DATABASE_URL=postgres://booking@pg-booking.int.aurelair.aero:5432/booking?sslmode=require
STRIPE_SECRET_KEY={V}
STRIPE_WEBHOOK_TOLERANCE=300
CURRENCY_DEFAULT=SEK
FEATURE_SEAT_MAP_V2=true
""",
        "h23_stripe_live",
        True,
    ),
    (
        "booking-engine/.env.example",
        r"""APP_ENV=development
PUBLIC_BASE_URL=http://localhost:5173
DATABASE_URL=postgres://booking:booking@localhost:5432/booking
# Publishable key is fine to share; the secret key lives in Vault (secret/booking/stripe)
STRIPE_PUBLISHABLE_KEY={V}
CURRENCY_DEFAULT=SEK
""",
        "h23_stripe_pk",
        False,
    ),
    (
        "booking-engine/src/payments/adyen.ts",
        r"""import { Client, CheckoutAPI, EnvironmentEnum } from "@adyen/api-library";

const apiKey = process.env.ADYEN_API_KEY ?? "{V}";

const client = new Client({
  apiKey,
  environment: EnvironmentEnum.LIVE,
  liveEndpointUrlPrefix: "a1b2c3d4e5f6-AurelRegional",
});

export const checkout = new CheckoutAPI(client);

export async function createSession(pnr: string, amountMinor: number, currency: string) {
  return checkout.PaymentsApi.sessions({
    merchantAccount: "AurelRegionalECOM",
    amount: { value: amountMinor, currency },
    reference: pnr,
    returnUrl: `https://book.aurelair.aero/confirm/${pnr}`,
  });
}
""",
        "h23_adyen_key",
        True,
    ),
    (
        "booking-engine/src/payments/adyen.test.ts",
        r"""import { describe, expect, it, vi } from "vitest";

vi.stubEnv("ADYEN_API_KEY", "{V}");

describe("createSession", () => {
  it("uses the PNR as the merchant reference", async () => {
    const { createSession } = await import("./adyen");
    const spy = vi.fn().mockResolvedValue({ id: "CS123" });
    expect(spy).not.toHaveBeenCalled();
    expect(typeof createSession).toBe("function");
  });
});
""",
        "h23_fake_token",
        False,
    ),
    (
        "booking-engine/src/payments/adyen.prod.ts",
        r"""import { Client, EnvironmentEnum } from "@adyen/api-library";

// Secret comes from the platform; never hard-code it here.
const apiKey = {V};

export const client = new Client({ apiKey, environment: EnvironmentEnum.LIVE });
""",
        "h23_ref_js",
        False,
    ),
    (
        "booking-engine/config/gds.json",
        r"""{
  "provider": "amadeus",
  "environment": "production",
  "baseUrl": "https://api.amadeus.com",
  "officeId": "STOA82100",
  "clientId": "Q8mXbA2rTcLw9vKpZ3hYjN6sFdG4eU1o",
  "clientSecret": "{V}",
  "timeoutMs": 12000,
  "retry": { "attempts": 2, "backoffMs": 500 }
}
""",
        "h23_amadeus_secret",
        True,
    ),
    (
        "mobile/ios/fastlane/AuthKey_6Y3TQ2X9KD.p8",
        r"""{V}
""",
        "h23_p8_key",
        True,
    ),
    (
        "mobile/ios/fastlane/asc_api_key.json",
        r"""{
  "key_id": "6Y3TQ2X9KD",
  "issuer_id": "69a6de7e-3c1f-47e3-e053-5b8c7c11a4d1",
  "key": "{V}",
  "in_house": false
}
""",
        "h23_gcp_sa_pk",
        True,
    ),
    (
        "mobile/push-service/src/config.ts",
        r"""export const config = {
  port: Number(process.env.PORT ?? 8080),
  fcm: {
    projectId: "aurel-air-mobile",
    legacyServerKey: "{V}",
    dryRun: false,
  },
  apns: {
    keyId: "6Y3TQ2X9KD",
    teamId: "7QK3M9ZP2D",
    bundleId: "aero.aurelair.app",
    production: true,
  },
  topics: ["gate-change", "delay", "boarding", "baggage-belt"],
};
""",
        "h23_fcm_server_key",
        True,
    ),
    (
        "mobile/ios/.netrc",
        r"""machine api.mapbox.com
  login mapbox
  password {V}
""",
        "h23_mapbox_secret",
        True,
    ),
    (
        "mobile/ios/AurelAir/Info.plist",
        r"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>CFBundleDisplayName</key>
	<string>Aurel Air</string>
	<key>CFBundleIdentifier</key>
	<string>aero.aurelair.app</string>
	<key>MBXAccessToken</key>
	<string>{V}</string>
	<key>NSLocationWhenInUseUsageDescription</key>
	<string>Used to show your way to the gate.</string>
</dict>
</plist>
""",
        "h23_mapbox_pk",
        False,
    ),
    (
        "booking-engine/.npmrc",
        r"""@aurelair:registry=https://npm.pkg.github.com
//npm.pkg.github.com/:_authToken={V}
engine-strict=true
save-exact=true
""",
        "h23_github",
        True,
    ),
    (
        "booking-engine/web/package-lock.json",
        r"""{
  "name": "@aurelair/booking-web",
  "version": "3.18.2",
  "lockfileVersion": 3,
  "requires": true,
  "packages": {
    "node_modules/date-fns": {
      "version": "3.6.0",
      "resolved": "https://registry.npmjs.org/date-fns/-/date-fns-3.6.0.tgz",
      "integrity": "{V}"
    },
    "node_modules/zod": {
      "version": "3.23.8",
      "resolved": "https://registry.npmjs.org/zod/-/zod-3.23.8.tgz",
      "integrity": "{V2}"
    }
  }
}
""",
        "h23_sri",
        False,
    ),
    (
        "booking-engine/src/server/session.ts",
        r"""import session from "express-session";
import RedisStore from "connect-redis";
import { redis } from "./redis";

export const sessionMiddleware = session({
  store: new RedisStore({ client: redis, prefix: "bk:sess:" }),
  name: "ara_bk",
  secret: process.env.SESSION_SECRET || "{V}",
  resave: false,
  saveUninitialized: false,
  cookie: { secure: true, httpOnly: true, sameSite: "lax", maxAge: 30 * 60 * 1000 },
});
""",
        "h23_jwt_secret",
        True,
    ),
    (
        "booking-engine/README.md",
        r"""# ARA booking engine

Node 20 + Fastify API, React front end in `web/`.

## Environments

| env     | URL                                  | notes                         |
|---------|--------------------------------------|-------------------------------|
| dev     | http://localhost:5173                | `npm run dev`                 |
| staging | https://book-stg.aurelair.aero       | Adyen test, Amadeus test PCC  |
| prod    | https://book.aurelair.aero           | deploys from `main` via Argo  |

Staging back office: https://book-stg.aurelair.aero/admin, user `revenue.admin`, password `{V}`
(shared with the revenue management team, ask before changing it).

## Running tests

```
npm ci
npm test
```
""",
        "h23_weak_pw",
        True,
    ),
    (
        "booking-engine/docs/api.md",
        r"""# Booking API

All endpoints need a bearer token from the auth service.

```http
GET /v1/bookings/ABC123 HTTP/1.1
Host: api.aurelair.aero
Authorization: Bearer {V}
Accept: application/json
```

Responses use ISO-8601 times in UTC and IATA airport codes.
""",
        "h23_doc_placeholder",
        False,
    ),
    (
        "booking-engine/deploy/k8s/booking-secrets.yaml",
        r"""apiVersion: v1
kind: Secret
metadata:
  name: booking-api
  namespace: booking
type: Opaque
stringData:
  REDIS_URL: rediss://default:{V}@redis-booking.int.aurelair.aero:6380/0
  DATABASE_PASSWORD: {V2}
""",
        "h23_url_pw",
        True,
    ),
    (
        "booking-engine/deploy/k8s/booking-sealed.yaml",
        r"""apiVersion: bitnami.com/v1alpha1
kind: SealedSecret
metadata:
  name: booking-api
  namespace: booking
spec:
  encryptedData:
    REDIS_URL: {V}
    DATABASE_PASSWORD: {V2}
  template:
    metadata:
      name: booking-api
      namespace: booking
""",
        "h23_sealed",
        False,
    ),
    (
        "agency-portal/config/database.php",
        r"""<?php

return [
    'default' => 'mysql',

    'connections' => [
        'mysql' => [
            'driver'    => 'mysql',
            'host'      => 'mysql-agency.int.aurelair.aero',
            'port'      => '3306',
            'database'  => 'agency_portal',
            'username'  => 'agency_app',
            'password'  => '{V}',
            'charset'   => 'utf8mb4',
            'collation' => 'utf8mb4_unicode_ci',
            'prefix'    => '',
        ],
    ],
];
""",
        "h23_db_pw",
        True,
    ),
    (
        "agency-portal/config/database.dist.php",
        r"""<?php

return [
    'default' => 'mysql',

    'connections' => [
        'mysql' => [
            'driver'   => 'mysql',
            'host'     => env('DB_HOST', '127.0.0.1'),
            'database' => env('DB_DATABASE', 'agency_portal'),
            'username' => env('DB_USERNAME', 'agency_app'),
            'password' => {V},
        ],
    ],
];
""",
        "h23_ref_php",
        False,
    ),
    (
        "agency-portal/public/admin/.htpasswd",
        r"""agent-support:{V}
revenue:{V2}
""",
        "h23_apr1",
        False,
    ),
    (
        "agency-portal/.env",
        r"""APP_NAME="ARA Agency Portal"
APP_ENV=production
APP_KEY={V}
APP_DEBUG=false
APP_URL=https://agents.aurelair.aero
LOG_CHANNEL=daily
""",
        "h23_laravel_key",
        True,
    ),
    (
        "mobile/android/app/src/main/res/raw/pinning.json",
        r"""{
  "domains": [
    {
      "host": "api.aurelair.aero",
      "pins": ["{V}", "{V2}"],
      "expires": "2026-09-30"
    }
  ]
}
""",
        "h23_tls_pin",
        False,
    ),
    (
        "mobile/android/app/src/main/res/values/google_oauth.xml",
        r"""<?xml version="1.0" encoding="utf-8"?>
<resources>
    <string name="default_web_client_id" translatable="false">{V}</string>
    <string name="server_client_id" translatable="false">{V2}</string>
</resources>
""",
        "h23_google_client_id",
        False,
    ),
    (
        "booking-engine/src/fixtures/bookings.json",
        r"""[
  {
    "recordLocator": "{V}",
    "passengers": [{ "lastName": "TESTPAX", "firstName": "ALPHA MR" }],
    "segments": [{ "flight": "AR 214", "from": "ARN", "to": "UME", "date": "2025-03-14" }]
  },
  {
    "recordLocator": "{V2}",
    "passengers": [{ "lastName": "TESTPAX", "firstName": "BRAVO MS" }],
    "segments": [{ "flight": "AR 331", "from": "GOT", "to": "OSL", "date": "2025-03-15" }]
  }
]
""",
        "h23_pnr",
        False,
    ),
]

TEMPLATES += [
    # ================================================================ loyalty programme
    (
        "loyalty/campaigns/send_tier_mail.py",
        r'''"""Sends the monthly tier-status mail to Aurel Miles members."""

import csv
import sys

from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import Mail

SENDGRID_API_KEY = "{V}"
TEMPLATE_ID = "d-4f1c2b9e7a8d4e0f9b3c6a1d2e5f7a80"


def main(path: str) -> None:
    client = SendGridAPIClient(SENDGRID_API_KEY)
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            msg = Mail(from_email="miles@aurelair.aero", to_emails=row["email"])
            msg.template_id = TEMPLATE_ID
            msg.dynamic_template_data = {"tier": row["tier"], "points": row["points"]}
            client.send(msg)


if __name__ == "__main__":
    main(sys.argv[1])
''',
        "h23_sendgrid",
        True,
    ),
    (
        "loyalty/campaigns/tests/test_send_tier_mail.py",
        r"""from unittest import mock

import send_tier_mail


@mock.patch.object(send_tier_mail, "SENDGRID_API_KEY", "{V}")
@mock.patch("send_tier_mail.SendGridAPIClient")
def test_sends_one_mail_per_row(client, tmp_path):
    csv_file = tmp_path / "members.csv"
    csv_file.write_text("email,tier,points\na@example.com,GOLD,41200\n")
    send_tier_mail.main(str(csv_file))
    assert client.return_value.send.call_count == 1
""",
        "h23_fake_token",
        False,
    ),
    (
        "loyalty/db/migrations/V12__service_roles.sql",
        r"""-- Roles for the Aurel Miles services (PostgreSQL 15)
CREATE ROLE miles_app LOGIN PASSWORD '{V}';
CREATE ROLE miles_reporting LOGIN PASSWORD '{V2}';

GRANT CONNECT ON DATABASE miles TO miles_app, miles_reporting;
GRANT USAGE ON SCHEMA miles TO miles_app, miles_reporting;
GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA miles TO miles_app;
GRANT SELECT ON ALL TABLES IN SCHEMA miles TO miles_reporting;
""",
        "h23_db_pw",
        True,
    ),
    (
        "loyalty/db/seed/dev_members.sql",
        r"""-- Dev seed: three members; the shared dev password is in the team vault (hashes below)
INSERT INTO miles.member (member_no, email, tier, password_hash) VALUES
  ('AM0000000001', 'gold.tester@example.com', 'GOLD', '{V}'),
  ('AM0000000002', 'silver.tester@example.com', 'SILVER', '{V2}'),
  ('AM0000000003', 'basic.tester@example.com', 'BASIC', '{V3}');
""",
        "h23_argon2",
        False,
    ),
    (
        "loyalty/points-engine/appsettings.Production.json",
        r"""{
  "Logging": {
    "LogLevel": { "Default": "Information", "Microsoft.AspNetCore": "Warning" }
  },
  "ConnectionStrings": {
    "Miles": "Server=sql-miles01.int.aurelair.aero,1433;Database=Miles;User Id=miles_points;Password={V};Encrypt=True;TrustServerCertificate=False"
  },
  "Points": {
    "ExpiryMonths": 36,
    "TierReviewDay": 1
  }
}
""",
        "h23_db_pw",
        True,
    ),
    (
        "loyalty/points-engine/appsettings.json",
        r"""{
  "ConnectionStrings": {
    "Miles": "Server=#{SqlServer}#;Database=Miles;User Id=miles_points;Password={V};Encrypt=True"
  },
  "Points": {
    "ExpiryMonths": 36
  }
}
""",
        "h23_placeholder",
        False,
    ),
    (
        "loyalty/points-engine/src/Partners/PartnerSignature.cs",
        r"""using System.Security.Cryptography;
using System.Text;

namespace Aurel.Miles.Partners;

public static class PartnerSignature
{
    // Shared with Nordhotels for signing accrual callbacks (rotated 2024-11).
    private static readonly byte[] HmacKey = Convert.FromHexString("{V}");

    public static string Sign(string body, long timestamp)
    {
        using var hmac = new HMACSHA256(HmacKey);
        var payload = Encoding.UTF8.GetBytes($"{timestamp}.{body}");
        return Convert.ToHexString(hmac.ComputeHash(payload)).ToLowerInvariant();
    }
}
""",
        "h23_hmac_hex",
        True,
    ),
    (
        "loyalty/points-engine/src/Partners/PartnerSignatureOptions.cs",
        r"""namespace Aurel.Miles.Partners;

public sealed class PartnerSignatureOptions
{
    public string KeyHex { get; init; } = string.Empty;

    public static PartnerSignatureOptions FromConfig(IConfiguration configuration, SecretClient secretClient) => new()
    {
        KeyHex = {V},
    };
}
""",
        "h23_ref_cs",
        False,
    ),
    (
        "loyalty/otp-service/internal/config/config.go",
        r"""package config

import "time"

type Twilio struct {
	AccountSID string
	AuthToken  string
	FromNumber string
}

var Default = Config{
	Listen:  ":8443",
	CodeTTL: 5 * time.Minute,
	Twilio: Twilio{
		AccountSID: "AC3f9a2d7c41e85b06d9f1a4c2e7b83d50",
		AuthToken:  "{V}",
		FromNumber: "+46766862000",
	},
}

type Config struct {
	Listen  string
	CodeTTL time.Duration
	Twilio  Twilio
}
""",
        "h23_twilio_token",
        True,
    ),
    (
        "loyalty/otp-service/internal/config/load.go",
        r"""package config

import (
	"os"
	"time"
)

func Load() Config {
	return Config{
		Listen:  os.Getenv("LISTEN_ADDR"),
		CodeTTL: 5 * time.Minute,
		Twilio: Twilio{
			AccountSID: os.Getenv("TWILIO_ACCOUNT_SID"),
			AuthToken:  {V},
			FromNumber: os.Getenv("TWILIO_FROM"),
		},
	}
}
""",
        "h23_ref_go",
        False,
    ),
    # ================================================================ baggage and cargo
    (
        "baggage/bag-events/tests/fixtures/bsm_samples.txt",
        r"""BSM
.V/1LARN
.F/AR214/14MAR/UME/Y
.N/{V}001
.S/Y/17C/C/034//N
.P/1TESTPAX/ALPHA MR
ENDBSM
BSM
.V/1LARN
.F/AR331/15MAR/OSL/Y
.N/{V2}002
.P/1TESTPAX/BRAVO MS
ENDBSM
""",
        "h23_bagtag",
        False,
    ),
    (
        "cargo/edi/partners/sftp_partners.csv",
        r"""partner,host,port,username,password,remote_dir
ScanFreight,sftp.scanfreight-partner.se,22,aurel_imp,{V},/in/fwb
NordicGSA,ftp.nordicgsa.no,22,ara_cargo,{V2},/upload/ffm
BalticHandling,sftp.baltic-handling.lt,2222,aurel,{V3},/edi/in
""",
        "h23_pw",
        True,
    ),
    (
        "cargo/telex-relay/src/main.rs",
        r"""use std::time::Duration;

const GATEWAY: &str = "https://telex-gw.cargo-imp.net/api/v3/messages";
const API_TOKEN: &str = "{V}";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()?;
    let body = std::fs::read_to_string("/srv/telex/outbox/next.imp")?;
    let resp = client
        .post(GATEWAY)
        .bearer_auth(API_TOKEN)
        .header("Content-Type", "text/plain")
        .body(body)
        .send()?;
    println!("status {}", resp.status());
    Ok(())
}
""",
        "h23_api_key",
        True,
    ),
    (
        "cargo/telex-relay/Cargo.lock",
        r"""# This file is automatically @generated by Cargo.
# It is not intended for manual editing.
version = 3

[[package]]
name = "reqwest"
version = "0.12.5"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "{V}"

[[package]]
name = "tokio"
version = "1.38.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "{V2}"
""",
        "h23_sha256",
        False,
    ),
    (
        "baggage/rfid-readers/Provision-Reader.ps1",
        r"""param(
    [Parameter(Mandatory)] [string] $ReaderHost,
    [string] $Station = "ARN"
)

$AdminUser = "admin"
$AdminPassword = "{V}"

$pair = "{0}:{1}" -f $AdminUser, $AdminPassword
$headers = @{ Authorization = "Basic " + [Convert]::ToBase64String([Text.Encoding]::ASCII.GetBytes($pair)) }

Invoke-RestMethod -Uri "https://$ReaderHost/api/v1/config" -Method Put -Headers $headers `
    -ContentType "application/json" `
    -Body (@{ station = $Station; mqtt = "mqtts://mqtt-bag.int.aurelair.aero:8883" } | ConvertTo-Json)
""",
        "h23_pw",
        True,
    ),
    (
        "baggage/rfid-readers/Rotate-ReaderPassword.ps1",
        r"""param([Parameter(Mandatory)] [string[]] $ReaderHosts)

$newPassword = {V}

foreach ($h in $ReaderHosts) {
    Write-Host "Rotating admin password on $h"
    Invoke-RestMethod -Uri "https://$h/api/v1/users/admin/password" -Method Post `
        -Body (@{ password = $newPassword } | ConvertTo-Json) -ContentType "application/json"
}
""",
        "h23_ref_ps",
        False,
    ),
    (
        "cargo/rates-app/config/secrets.yml",
        r"""development:
  secret_key_base: <%= ENV["SECRET_KEY_BASE"] %>

production:
  secret_key_base: {V}
""",
        "h23_rails_secret",
        True,
    ),
    (
        "cargo/rates-app/config/credentials/production.yml.enc",
        r"""{V}
""",
        "h23_rails_enc",
        False,
    ),
    (
        "cargo/rates-app/config/database.yml",
        r"""default: &default
  adapter: postgresql
  encoding: unicode
  pool: <%= ENV.fetch("RAILS_MAX_THREADS") { 5 } %>

production:
  <<: *default
  host: pg-cargo.int.aurelair.aero
  database: cargo_rates
  username: rates_app
  password: {V}
""",
        "h23_db_pw",
        True,
    ),
    (
        "cargo/rates-app/config/database.ci.yml",
        r"""production:
  adapter: postgresql
  host: <%= ENV.fetch("RATES_DB_HOST") %>
  database: cargo_rates
  username: rates_app
  password: {V}
""",
        "h23_ref_ruby",
        False,
    ),
    (
        "cargo/tracking-api/src/db.js",
        r"""const { MongoClient } = require("mongodb");

const uri =
  process.env.MONGO_URI ||
  "mongodb+srv://tracking_api:{V}@cargo-track.x7kq2.mongodb.net/tracking?retryWrites=true&w=majority";

const client = new MongoClient(uri, { maxPoolSize: 20 });

module.exports = { client, db: () => client.db("tracking") };
""",
        "h23_url_pw",
        True,
    ),
    (
        "cargo/tracking-api/test/fixtures/shipments.json",
        r"""[
  { "awb": "{V}", "origin": "ARN", "destination": "UME", "pieces": 4, "weightKg": 212.5 },
  { "awb": "{V2}", "origin": "GOT", "destination": "OSL", "pieces": 1, "weightKg": 18.0 }
]
""",
        "h23_awb",
        False,
    ),
    (
        "baggage/bag-reconcile/settings.toml",
        r"""[amqp]
url = "amqps://bagreconcile:{V}@mq-bag.int.aurelair.aero:5671/bags"
exchange = "bag.events"
prefetch = 50

[reconcile]
cutoff_minutes = 25
stations = ["ARN", "GOT", "UME", "LLA"]
""",
        "h23_url_pw",
        True,
    ),
]

TEMPLATES += [
    # ================================================================ MRO: maintenance records
    (
        "mro/amos-integration/src/main/resources/amos.properties",
        r"""# AMOS web services (Swiss-AS) - AGT production
amos.ws.url=https://amos.aurel-technics.aero/amos-ws/services
amos.ws.username=SVC_INTEGRATION
amos.ws.password={V}
amos.ws.client=AGT
amos.sync.workorders.cron=0 */15 * * * *
amos.sync.components.batch-size=500
""",
        "h23_pw",
        True,
    ),
    (
        "mro/amos-integration/src/main/resources/amos-encrypted.properties",
        r"""# values decrypted at start-up by jasypt-spring-boot (key from JASYPT_ENCRYPTOR_PASSWORD)
amos.ws.url=https://amos.aurel-technics.aero/amos-ws/services
amos.ws.username=SVC_INTEGRATION
amos.ws.password={V}
amos.db.password={V2}
""",
        "h23_jasypt",
        False,
    ),
    (
        "mro/records-scanner/appsettings.json",
        r"""{
  "Storage": {
    "ConnectionString": "DefaultEndpointsProtocol=https;AccountName=stagtrecords;AccountKey={V};EndpointSuffix=core.windows.net",
    "Container": "tech-log-scans"
  },
  "Ocr": {
    "Language": "eng",
    "MinConfidence": 0.82
  }
}
""",
        "h23_azure_storage_key",
        True,
    ),
    (
        "mro/records-scanner/appsettings.Development.json",
        r"""{
  "Storage": {
    "ConnectionString": "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={V};BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;",
    "Container": "tech-log-scans"
  }
}
""",
        "h23_azurite_key",
        False,
    ),
    (
        "mro/task-cards/export_to_sharepoint.py",
        r'''"""Exports signed task cards from AMOS to the AGT Quality SharePoint library."""

import msal
import requests

TENANT_ID = "5d2f7c1a-93be-4e0f-8a61-2c4b9e7d0f13"
CLIENT_ID = "b8e4a2c0-17d9-4f35-9c6e-0a3f5b7d1e29"
CLIENT_SECRET = "{V}"
SITE = "aurelgroup.sharepoint.com:/sites/AGT-Quality"


def token() -> str:
    app = msal.ConfidentialClientApplication(
        CLIENT_ID,
        authority=f"https://login.microsoftonline.com/{TENANT_ID}",
        client_credential=CLIENT_SECRET,
    )
    return app.acquire_token_for_client(scopes=["https://graph.microsoft.com/.default"])["access_token"]


def upload(path: str, name: str) -> None:
    url = f"https://graph.microsoft.com/v1.0/sites/{SITE}/drive/root:/TaskCards/{name}:/content"
    with open(path, "rb") as fh:
        requests.put(url, data=fh, headers={"Authorization": f"Bearer {token()}"}, timeout=60)
''',
        "h23_azure_client_secret",
        True,
    ),
    (
        "mro/task-cards/README.md",
        r"""# Task-card export

Exports task cards for closed work packages. Example card header as exported:

| Field          | Value              |
|----------------|--------------------|
| Aircraft       | SE-MKB (ATR 72-600) |
| Part number    | {V}                |
| Serial number  | {V2}               |
| Work order     | WO-2025-014482     |

The client secret is in Key Vault `kv-agt-prod`, secret `taskcards-graph`.
""",
        "h23_part_serial",
        False,
    ),
    (
        "mro/ndt-uploader/Web.config",
        r"""<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <connectionStrings>
    <add name="NdtRecords"
         connectionString="Data Source=sql-agt01.aurel.local;Initial Catalog=NdtRecords;User ID=ndt_uploader;Password={V};"
         providerName="System.Data.SqlClient" />
  </connectionStrings>
  <appSettings>
    <add key="UploadRoot" value="\\fs-agt01\ndt$\incoming" />
    <add key="MaxFileMb" value="250" />
  </appSettings>
</configuration>
""",
        "h23_db_pw",
        True,
    ),
    (
        "mro/ndt-uploader/Web.Release.config",
        r"""<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <connectionStrings configProtectionProvider="DataProtectionConfigurationProvider">
    <EncryptedData>
      <CipherData>
        <CipherValue>{V}</CipherValue>
      </CipherData>
    </EncryptedData>
  </connectionStrings>
</configuration>
""",
        "h23_dpapi",
        False,
    ),
    (
        "mro/hangar-tablets/wpa_supplicant.conf",
        r"""ctrl_interface=DIR=/var/run/wpa_supplicant GROUP=netdev
update_config=1
country=SE

network={
    ssid="AGT-Hangar"
    psk="{V}"
    key_mgmt=WPA-PSK
    priority=10
}

network={
    ssid="AGT-Hangar-5G"
    psk="{V}"
    key_mgmt=WPA-PSK
    priority=20
}
""",
        "h23_wifi_psk",
        True,
    ),
    (
        "mro/reliability/notebooks/engine_trend.ipynb",
        r"""{
 "cells": [
  {
   "cell_type": "markdown",
   "metadata": {},
   "source": ["# PW127M EGT margin trend (ATR fleet)"]
  },
  {
   "cell_type": "code",
   "execution_count": 3,
   "metadata": {},
   "outputs": [],
   "source": [
    "import snowflake.connector\n",
    "conn = snowflake.connector.connect(\n",
    "    account=\"aurelgroup-eu1\",\n",
    "    user=\"AGT_RELIABILITY\",\n",
    "    password=\"{V}\",\n",
    "    warehouse=\"ANALYST_WH\",\n",
    "    database=\"MRO\",\n",
    ")"
   ]
  }
 ],
 "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
        "h23_pw",
        True,
    ),
    (
        "mro/reliability/notebooks/apu_removals.ipynb",
        r"""{
 "cells": [
  {
   "cell_type": "code",
   "execution_count": 1,
   "metadata": {},
   "outputs": [],
   "source": [
    "import getpass, os\n",
    "import snowflake.connector\n",
    "conn = snowflake.connector.connect(\n",
    "    account=\"aurelgroup-eu1\",\n",
    "    user=\"AGT_RELIABILITY\",\n",
    "    password={V},\n",
    ")"
   ]
  }
 ],
 "metadata": {},
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
        "h23_ref_py",
        False,
    ),
    (
        "mro/records-archive/nightly_backup.sh",
        r"""#!/bin/sh
# Nightly dump of the maintenance records DB to the archive share (retention: EASA Part-M, 3 years+)
set -e
export PGHOST=pg-records.aurel.local
export PGUSER=records_backup
export PGPASSWORD='{V}'

STAMP=$(date +%F)
pg_dump -Fc records > /mnt/archive/records/records-$STAMP.dump
find /mnt/archive/records -name 'records-*.dump' -mtime +1200 -delete
""",
        "h23_pw",
        True,
    ),
    (
        "mro/records-archive/restore_check.sh",
        r"""#!/bin/sh
# Monthly restore test; credentials come from the secret store, not from this script.
set -e
export PGHOST=pg-records-restore.aurel.local
export PGUSER=records_backup
export PGPASSWORD={V}
pg_restore -l "$(ls -t /mnt/archive/records/*.dump | head -1)" > /dev/null && echo OK
""",
        "h23_ref_sh",
        False,
    ),
    (
        "mro/tooling-crib/users.sql",
        r"""-- tooling crib app, MySQL 8
CREATE USER 'crib_app'@'10.40.%' IDENTIFIED WITH mysql_native_password AS '{V}';
CREATE USER 'crib_report'@'10.40.%' IDENTIFIED WITH mysql_native_password AS '{V2}';
GRANT SELECT, INSERT, UPDATE ON crib.* TO 'crib_app'@'10.40.%';
GRANT SELECT ON crib.* TO 'crib_report'@'10.40.%';
""",
        "h23_mysql_hash",
        False,
    ),
    # ================================================================ airport Wi-Fi, network, kiosks
    (
        "netops/wifi/hostapd-lounge.conf",
        r"""interface=wlan0
bridge=br-lounge
driver=nl80211
ssid=AurelAir-Lounge-ARN
hw_mode=a
channel=36
ieee80211n=1
ieee80211ac=1
wmm_enabled=1
auth_algs=1
wpa=2
wpa_key_mgmt=WPA-PSK
rsn_pairwise=CCMP
wpa_passphrase={V}
""",
        "h23_wifi_psk",
        True,
    ),
    (
        "netops/radius/clients.conf",
        r"""# FreeRADIUS clients - airport APs and WLCs
client wlc-arn-01 {
    ipaddr = 10.12.0.10
    secret = {V}
    shortname = wlc-arn-01
    nas_type = cisco
}

client wlc-arn-02 {
    ipaddr = 10.12.0.11
    secret = {V}
    shortname = wlc-arn-02
    nas_type = cisco
}

client captive-portal {
    ipaddr = 10.12.8.20
    secret = {V2}
}
""",
        "h23_radius_secret",
        True,
    ),
    (
        "netops/switches/arn-core-sw01.cfg",
        r"""!
hostname arn-core-sw01
!
aaa new-model
aaa authentication login default group tacacs+ local
!
snmp-server community {V} RO SNMP-MGMT
snmp-server location ARN T5 comms room 2
snmp-server contact netops@aurelair.aero
!
interface Vlan120
 description KIOSK
 ip address 10.12.120.1 255.255.255.0
!
end
""",
        "h23_snmp_community",
        True,
    ),
    (
        "netops/switches/arn-access-sw07.cfg",
        r"""!
hostname arn-access-sw07
!
enable secret 9 {V}
username netadmin privilege 15 secret 9 {V2}
!
ip ssh version 2
line vty 0 15
 transport input ssh
 login local
!
end
""",
        "h23_cisco9",
        False,
    ),
    (
        "netops/switches/gate-edge-sw03.cfg",
        r"""!
hostname gate-edge-sw03
!
enable secret 5 {V}
username kioskops privilege 7 secret 5 {V2}
!
end
""",
        "h23_md5crypt",
        False,
    ),
    (
        "kiosk/cuss-app/config/kiosk.json",
        r"""{
  "station": "ARN",
  "airline": "AR",
  "platform": "CUSS 1.5",
  "peripherals": ["BoardingPassPrinter", "BagTagPrinter", "BarcodeReader", "PassportReader"],
  "maintenance": {
    "menuGesture": "four-corner-tap",
    "adminUser": "kioskadmin",
    "adminPassword": "{V}"
  },
  "idleTimeoutSeconds": 90
}
""",
        "h23_weak_pw",
        True,
    ),
    (
        "kiosk/provisioning/autounattend.xml",
        r"""<?xml version="1.0" encoding="utf-8"?>
<unattend xmlns="urn:schemas-microsoft-com:unattend">
  <settings pass="oobeSystem">
    <component name="Microsoft-Windows-Shell-Setup" processorArchitecture="amd64" publicKeyToken="31bf3856ad364e35" language="neutral" versionScope="nonSxS">
      <UserAccounts>
        <AdministratorPassword>
          <Value>{V}</Value>
          <PlainText>true</PlainText>
        </AdministratorPassword>
      </UserAccounts>
      <AutoLogon>
        <Enabled>true</Enabled>
        <Username>kiosk</Username>
        <Password>
          <Value>{V2}</Value>
          <PlainText>true</PlainText>
        </Password>
      </AutoLogon>
    </component>
  </settings>
</unattend>
""",
        "h23_pw",
        True,
    ),
    (
        "kiosk/cuss-app/src/strings/fr.json",
        r"""{
  "welcome": "Bienvenue chez Aurel Air",
  "scanPassport": "Veuillez scanner votre passeport",
  "staffLogin.password": "Mot de passe",
  "staffLogin.error": "{V}",
  "printing": "Impression de votre carte d'embarquement…"
}
""",
        "h23_ui_fr",
        False,
    ),
    (
        "netops/wifi/README.md",
        r"""# Airport Wi-Fi

- `AurelAir-Lounge-*`: WPA2-PSK, passphrase rotated quarterly; stored as `{V}`.
- `AurelAir-Free`: open SSID behind the captive portal (see `captive-portal/`).
- `ARA-Staff`: 802.1X via FreeRADIUS, AD credentials.

Never paste the lounge passphrase into tickets; lounge staff get it from the duty manager.
""",
        "h23_op_ref",
        False,
    ),
    (
        "netops/radius/users",
        r"""# Local fallback users for the staff SSID when AD is unreachable
netops-break-glass  Crypt-Password := "{V}"
                    Service-Type = Administrative-User
kiosk-svc           Crypt-Password := "{V2}"
""",
        "h23_sha512crypt",
        False,
    ),
]

TEMPLATES += [
    # ================================================================ data warehouse
    (
        "dwh/dbt/profiles.yml",
        r"""aurel_dwh:
  target: prod
  outputs:
    prod:
      type: snowflake
      account: aurelgroup-eu1
      user: DBT_PROD
      password: {V}
      role: TRANSFORMER
      warehouse: TRANSFORM_WH
      database: ANALYTICS
      schema: MARTS
      threads: 8
""",
        "h23_pw",
        True,
    ),
    (
        "dwh/dbt/profiles.ci.yml",
        r"""aurel_dwh:
  target: ci
  outputs:
    ci:
      type: snowflake
      account: aurelgroup-eu1
      user: DBT_CI
      password: {V}
      role: TRANSFORMER_CI
      warehouse: CI_WH
      database: ANALYTICS_CI
      schema: "dbt_{{ env_var('CI_MERGE_REQUEST_IID', 'local') }}"
      threads: 4
""",
        "h23_ref_dbt",
        False,
    ),
    (
        "dwh/airflow/airflow.cfg",
        r"""[core]
executor = CeleryExecutor
load_examples = False
fernet_key = {V}
dags_folder = /opt/airflow/dags

[database]
sql_alchemy_conn = postgresql+psycopg2://airflow@pg-airflow.int.aurelair.aero:5432/airflow

[webserver]
base_url = https://airflow.int.aurelair.aero
""",
        "h23_fernet",
        True,
    ),
    (
        "dwh/redshift/load_bookings.sql",
        r"""-- daily load of booking facts from the S3 export (legacy cluster, being migrated to Snowflake)
COPY staging.booking_fact
FROM 's3://ara-dwh-exports/bookings/dt=2025-03-14/'
CREDENTIALS '{V}'
FORMAT AS PARQUET;

INSERT INTO dwh.booking_fact SELECT * FROM staging.booking_fact;
TRUNCATE staging.booking_fact;
""",
        "h23_aws_redshift",
        True,
    ),
    (
        "dwh/databricks/.databrickscfg",
        r"""[DEFAULT]
host = https://adb-4417283391022815.15.azuredatabricks.net
token = {V}

[dev]
host = https://adb-7730194462218301.1.azuredatabricks.net
token = {V2}
""",
        "h23_databricks",
        True,
    ),
    (
        "dwh/spark/jobs/FuelBurn.scala",
        r"""package aero.aurelair.dwh.jobs

import org.apache.spark.sql.SparkSession

object FuelBurn {
  def main(args: Array[String]): Unit = {
    val spark = SparkSession.builder().appName("fuel-burn").getOrCreate()
    spark.conf.set(
      "fs.azure.account.key.stdwhraw.dfs.core.windows.net",
      "{V}"
    )
    val flights = spark.read.parquet("abfss://raw@stdwhraw.dfs.core.windows.net/acars/oooi/")
    flights.groupBy("tail", "flight_date").sum("fuel_kg").write.mode("overwrite")
      .parquet("abfss://curated@stdwhraw.dfs.core.windows.net/fuel_burn/")
  }
}
""",
        "h23_azure_storage_key",
        True,
    ),
    (
        "dwh/gcp/sa-dwh-loader.json",
        r"""{
  "type": "service_account",
  "project_id": "ara-dwh-prod",
  "private_key_id": "3c9e1f0a7b24d85e6f1a0c3b9d7e2f4a8b6c1d05",
  "private_key": "{V}",
  "client_email": "dwh-loader@ara-dwh-prod.iam.gserviceaccount.com",
  "client_id": "108273645519283746501",
  "auth_uri": "https://accounts.google.com/o/oauth2/auth",
  "token_uri": "https://oauth2.googleapis.com/token"
}
""",
        "h23_gcp_sa_pk",
        True,
    ),
    (
        "dwh/etl/tests/fixtures/coupons.csv",
        r"""ticket_number,coupon,flight,dep,arr,fare_basis,flown_date
{V},1,AR214,ARN,UME,YFLEX,2025-03-14
{V2},1,AR331,GOT,OSL,LSAVER,2025-03-15
{V3},2,AR332,OSL,GOT,LSAVER,2025-03-17
""",
        "h23_ticket_no",
        False,
    ),
    (
        "dwh/snowflake/admin/create_service_users_keypair.sql",
        r"""USE ROLE SECURITYADMIN;

-- key-pair auth only; the private key stays in the loader's secret store
ALTER USER DBT_PROD SET RSA_PUBLIC_KEY = '{V}';
""",
        "h23_public_pem",
        False,
    ),
    # ================================================================ vendors and contractors
    (
        "vendors/skytech-consulting/handover/deploy_notes.txt",
        r"""SkyTech Consulting - handover to ARA IT (crew portal v2)
=========================================================

Servers
  crewportal-app01.int.aurelair.aero  (RHEL 9)
  crewportal-app02.int.aurelair.aero  (RHEL 9)

Access
  ssh skytech@crewportal-app01.int.aurelair.aero
  password: {V}
  (sudo allowed for systemctl restart crewportal only)

Deploy
  cd /opt/crewportal && ./deploy.sh <release-tag>

Please disable the skytech account after sign-off.
""",
        "h23_pw",
        True,
    ),
    (
        "vendors/catering/orders/send_orders.php",
        r"""<?php
// Catering pre-order export for NordCater (runs from cron on agency-portal host)
$mysqli = new mysqli('mysql-agency.int.aurelair.aero', 'catering_export', '{V}', 'agency_portal');
if ($mysqli->connect_errno) {
    error_log('catering export: ' . $mysqli->connect_error);
    exit(1);
}
$res = $mysqli->query("SELECT pnr, flight, meal_code FROM preorders WHERE flight_date = CURDATE() + INTERVAL 1 DAY");
$out = fopen('/srv/catering/outbox/' . date('Ymd') . '.csv', 'w');
while ($row = $res->fetch_assoc()) {
    fputcsv($out, $row);
}
fclose($out);
""",
        "h23_db_pw",
        True,
    ),
    (
        "vendors/ground-handling/HANDOVER.md",
        r"""# Ground handling systems - contractor handover (NordGround AB -> AGT)

| System                     | URL / host                              | User           | Password   |
|----------------------------|-----------------------------------------|----------------|------------|
| Load control (DCS)         | https://lc.nordground.se                | agt.loadctl    | {V}        |
| GSE fleet telemetry        | https://gse.fleetlink-telematics.com    | agt-admin      | {V2}       |
| De-icing log               | https://deice.nordground.se/admin       | agt.deice      | {V3}       |

Change all of the above after the first login. Contact: ops-it@nordground.se
""",
        "h23_pw",
        True,
    ),
    (
        "vendors/de-icing/contract/sla-appendix.md",
        r"""# Appendix C - API access (test environment)

The vendor's public API documentation uses the following sample request:

```
curl -u demo:{V} https://api.deicing.example/v1/events?station=ARN
```

Production credentials are issued per station and are not part of this contract.
""",
        "h23_doc_pw",
        False,
    ),
    (
        "vendors/it-contractor/notes/INC-5530.txt",
        r"""INC-5530  Password reset request, GOT ramp supervisor
Opened: 2025-02-12 14:30 UTC

14:41  Sent reset link to user; password policy requires at least {V} characters.
14:55  Closed, user set a new password via self-service.
""",
        "h23_pw_policy",
        False,
    ),
]

TEMPLATES += [
    # ================================================================ CI and infrastructure
    (
        "infra/terraform/aws/providers.tf",
        r"""terraform {
  required_version = ">= 1.6"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.40"
    }
  }
}

provider "aws" {
  region     = "eu-north-1"
  {V}
  default_tags {
    tags = {
      owner      = "platform"
      costcenter = "ARA-IT"
    }
  }
}
""",
        "h23_aws_tf_pair",
        True,
    ),
    (
        "infra/terraform/aws/rds_crew.tf",
        r"""resource "random_password" "crew_db" {
  length  = 32
  special = true
}

resource "aws_db_instance" "crew" {
  identifier          = "ara-crew-pg"
  engine              = "postgres"
  engine_version      = "15.5"
  instance_class      = "db.r6g.large"
  allocated_storage   = 200
  username            = "crew_admin"
  password            = {V}
  storage_encrypted   = true
  deletion_protection = true
}
""",
        "h23_ref_tf",
        False,
    ),
    (
        "infra/terraform/aws/envs/prod.tfvars",
        r"""environment        = "prod"
vpc_cidr           = "10.60.0.0/16"
crew_db_username   = "crew_admin"
crew_db_password   = "{V}"
loyalty_db_password = "{V2}"
enable_bastion     = false
""",
        "h23_db_pw",
        True,
    ),
    (
        "infra/terraform/.terraformrc",
        r"""credentials "app.terraform.io" {
  token = "{V}"
}

plugin_cache_dir = "$HOME/.terraform.d/plugin-cache"
""",
        "h23_tfc_token",
        True,
    ),
    (
        "infra/terraform/aws/.terraform.lock.hcl",
        r"""# This file is maintained automatically by "terraform init".
# Manual edits may be lost in future updates.

provider "registry.terraform.io/hashicorp/aws" {
  version     = "5.40.0"
  constraints = "~> 5.40"
  hashes = [
    "{V}",
    "{V2}",
    "{V3}",
  ]
}
""",
        "h23_tf_hash",
        False,
    ),
    (
        ".github/workflows/release-images.yml",
        r"""name: release-images
on:
  push:
    tags: ["v*"]

jobs:
  build:
    runs-on: ubuntu-latest
    env:
      DOCKERHUB_USER: aurelair
      DOCKERHUB_TOKEN: {V}
    steps:
      - uses: actions/checkout@v4
      - run: echo "$DOCKERHUB_TOKEN" | docker login -u "$DOCKERHUB_USER" --password-stdin
      - run: docker build -t aurelair/booking-api:${GITHUB_REF_NAME} .
      - run: docker push aurelair/booking-api:${GITHUB_REF_NAME}
""",
        "h23_docker_pat",
        True,
    ),
    (
        ".github/workflows/ci.yml",
        r"""name: ci
on: [pull_request]

jobs:
  test:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-node@v4
        with:
          node-version: 20
      - run: npm ci && npm test
      - uses: docker/login-action@v3
        with:
          username: aurelair
          password: {V}
""",
        "h23_ref_ci",
        False,
    ),
    (
        ".github/workflows/sync-vendor-repo.yml",
        r"""name: sync-vendor-repo
on:
  schedule:
    - cron: "0 4 * * 1"

jobs:
  mirror:
    runs-on: ubuntu-latest
    steps:
      - run: |
          git clone --mirror https://x-access-token:{V}@github.com/skytech-consulting/ara-crew-portal.git
          cd ara-crew-portal.git
          git push --mirror https://gitlab.aurelair.aero/vendors/crew-portal.git
""",
        "h23_github_fine",
        True,
    ),
    (
        "crew-scheduler/.gitlab-ci.yml",
        r"""stages: [build, test, quality, deploy]

variables:
  MAVEN_OPTS: "-Dmaven.repo.local=.m2/repository"
  SONAR_HOST_URL: "https://sonar.int.aurelair.aero"
  SONAR_TOKEN: "{V}"

build:
  stage: build
  image: maven:3.9-eclipse-temurin-21
  script: mvn -B package -DskipTests

sonar:
  stage: quality
  image: maven:3.9-eclipse-temurin-21
  script: mvn -B verify sonar:sonar -Dsonar.projectKey=crew-scheduler
""",
        "h23_sonar",
        True,
    ),
    (
        "mro/amos-integration/Jenkinsfile",
        r"""pipeline {
  agent { label 'linux' }
  stages {
    stage('Build') {
      steps { sh './mvnw -B package' }
    }
    stage('Trigger downstream') {
      steps {
        sh 'curl -fsS -X POST -u agt-ci:{V} https://jenkins.aurel-technics.aero/job/amos-deploy/buildWithParameters?ENV=prod'
      }
    }
  }
}
""",
        "h23_jenkins_token",
        True,
    ),
    (
        "mro/amos-integration/jenkins/credentials.xml",
        r"""<?xml version='1.1' encoding='UTF-8'?>
<com.cloudbees.plugins.credentials.SystemCredentialsProvider plugin="credentials@1337.v60b_d7b_c7b_c9f">
  <domainCredentialsMap class="hudson.util.CopyOnWriteMap$Hash">
    <entry>
      <com.cloudbees.plugins.credentials.domains.Domain><specifications/></com.cloudbees.plugins.credentials.domains.Domain>
      <java.util.concurrent.CopyOnWriteArrayList>
        <com.cloudbees.plugins.credentials.impl.UsernamePasswordCredentialsImpl>
          <id>amos-ws</id>
          <username>SVC_INTEGRATION</username>
          <password>{V}</password>
        </com.cloudbees.plugins.credentials.impl.UsernamePasswordCredentialsImpl>
      </java.util.concurrent.CopyOnWriteArrayList>
    </entry>
  </domainCredentialsMap>
</com.cloudbees.plugins.credentials.SystemCredentialsProvider>
""",
        "h23_jenkins_enc",
        False,
    ),
    (
        "infra/ansible/group_vars/kiosks.yml",
        r"""ansible_user: kioskops
ansible_connection: winrm
ansible_winrm_transport: ntlm
ansible_port: 5986
ansible_password: {V}
kiosk_timezone: W. Europe Standard Time
kiosk_cuss_version: "1.5.3"
""",
        "h23_pw",
        True,
    ),
    (
        "infra/ansible/group_vars/all/vault.yml",
        r"""vault_kiosk_admin_password: !vault |
  {IV}
vault_radius_secret: "{{ lookup('community.hashi_vault.hashi_vault', 'secret=kv/data/netops/radius:secret') }}"
""",
        "h23_ansible_vault",
        False,
    ),
    (
        "infra/helm/booking-api/values-prod.yaml",
        r"""replicaCount: 4
image:
  repository: registry.aurelair.aero/booking/booking-api
  tag: "3.18.2"

redis:
  enabled: true
  auth:
    enabled: true
    password: "{V}"

ingress:
  enabled: true
  hosts:
    - host: api.aurelair.aero
      paths: ["/v1/bookings"]
""",
        "h23_pw",
        True,
    ),
    (
        "infra/helm/booking-api/values.yaml",
        r"""replicaCount: 1
image:
  repository: registry.aurelair.aero/booking/booking-api
  tag: latest

redis:
  enabled: true
  auth:
    enabled: true
    existingSecret: {V}
    existingSecretPasswordKey: redis-password
""",
        "h23_secret_name",
        False,
    ),
    (
        "infra/argocd/repositories/crew-scheduler-repo.yaml",
        r"""apiVersion: v1
kind: Secret
metadata:
  name: repo-crew-scheduler
  namespace: argocd
  labels:
    argocd.argoproj.io/secret-type: repository
stringData:
  type: git
  url: https://gitlab.aurelair.aero/crew/crew-scheduler.git
  username: argocd
  password: {V}
""",
        "h23_gitlab",
        True,
    ),
    (
        "infra/docker/booking-api/Dockerfile",
        r"""FROM node:20-bookworm-slim AS build
WORKDIR /app
ARG NPM_TOKEN={V}
COPY package.json package-lock.json .npmrc ./
RUN echo "//registry.npmjs.org/:_authToken=${NPM_TOKEN}" >> .npmrc && npm ci --omit=dev && rm -f .npmrc
COPY . .
RUN npm run build

FROM node:20-bookworm-slim
WORKDIR /app
COPY --from=build /app/dist ./dist
COPY --from=build /app/node_modules ./node_modules
USER node
CMD ["node", "dist/server.js"]
""",
        "h23_npm",
        True,
    ),
    (
        "loyalty/points-engine/Dockerfile",
        r"""FROM mcr.microsoft.com/dotnet/sdk:8.0 AS build
WORKDIR /src
ENV NUGET_API_KEY={V}
COPY . .
RUN dotnet nuget add source https://nuget.int.aurelair.aero/v3/index.json -n aurel -u ci -p "$NUGET_API_KEY" --store-password-in-clear-text \
 && dotnet publish src/Aurel.Miles.Points.csproj -c Release -o /out

FROM mcr.microsoft.com/dotnet/aspnet:8.0
COPY --from=build /out /app
ENTRYPOINT ["dotnet", "/app/Aurel.Miles.Points.dll"]
""",
        "h23_nuget",
        True,
    ),
    (
        "infra/docker/ci-runner/config.json",
        r"""{
  "auths": {
    "registry.aurelair.aero": {
      "auth": "{V}"
    },
    "registry.aurel-technics.aero": {
      "auth": "{V2}"
    }
  }
}
""",
        "h23_basic_b64",
        True,
    ),
    (
        "infra/bootstrap/aws/credentials",
        r"""[default]
region = eu-north-1

[ara-platform-admin]
{V}
region = eu-north-1
""",
        "h23_aws_ini_pair",
        True,
    ),
    (
        "infra/bootstrap/aws/credentials.example",
        r"""# Example from the AWS docs; put your own profile in ~/.aws/credentials
[ara-platform-admin]
{V}
region = eu-north-1
""",
        "h23_aws_example_pair",
        False,
    ),
    (
        "baggage/bag-events/deploy/cronjob.yaml",
        r"""apiVersion: batch/v1
kind: CronJob
metadata:
  name: bag-archive-export
  namespace: baggage
spec:
  schedule: "30 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers:
            - name: export
              image: registry.aurelair.aero/baggage/archive-export:1.4.0
              env:
                - name: S3_BUCKET
                  value: ara-bag-archive
                - name: AWS_REGION
                  value: eu-north-1
              envFrom:
                - secretRef:
                    name: bag-archive-aws
---
apiVersion: v1
kind: Secret
metadata:
  name: bag-archive-aws
  namespace: baggage
stringData:
  {IV}
""",
        "h23_aws_yaml_pair",
        True,
    ),
    (
        "infra/monitoring/datadog-agent/datadog.yaml",
        r"""api_key: {V}
site: datadoghq.eu
hostname_fqdn: true
tags:
  - env:prod
  - team:platform
logs_enabled: true
apm_config:
  enabled: true
""",
        "h23_datadog_key",
        True,
    ),
    (
        "infra/monitoring/alertmanager/alertmanager.yml",
        r"""global:
  resolve_timeout: 5m
  slack_api_url: "{V}"

route:
  receiver: ops-slack
  group_by: [alertname, service]
  routes:
    - matchers: [severity="page"]
      receiver: ops-slack

receivers:
  - name: ops-slack
    slack_configs:
      - channel: "#ops-alerts"
        send_resolved: true
""",
        "h23_slack_webhook",
        True,
    ),
    (
        "infra/monitoring/alertmanager/pagerduty.yml",
        r"""receivers:
  - name: crew-systems-pager
    pagerduty_configs:
      - routing_key: {V}
        severity: critical
        description: '{{ .CommonAnnotations.summary }}'
  - name: booking-pager
    pagerduty_configs:
      - routing_key: {V2}
        severity: critical
""",
        "h23_pagerduty_key",
        True,
    ),
    (
        "infra/monitoring/grafana/provisioning/datasources/flightops.yaml",
        r"""apiVersion: 1
datasources:
  - name: flightops-pg
    type: postgres
    url: pg-flightops.int.aurelair.aero:5432
    user: grafana_ro
    jsonData:
      database: flightops
      sslmode: require
    secureJsonData:
      password: {V}
""",
        "h23_ref_grafana",
        False,
    ),
    (
        "infra/vault/bootstrap.sh",
        r"""#!/usr/bin/env bash
# One-off: seed the KV mounts for the new cluster. Run from the platform bastion.
set -euo pipefail
export VAULT_ADDR=https://vault.int.aurelair.aero:8200
export VAULT_TOKEN={V}

vault secrets enable -path=kv -version=2 kv || true
vault policy write booking-api policies/booking-api.hcl
vault policy write crew-scheduler policies/crew-scheduler.hcl
""",
        "h23_vault_token",
        True,
    ),
    (
        "infra/sops/keys/platform.agekey",
        r"""# created: 2024-10-02T09:14:55Z
# public key: age1skpa0r28h70cx0qd63tc2yguggqqdd22j5vdtvcnph62fsy4nq4ynkn75t
{V}
""",
        "h23_age_key",
        True,
    ),
    (
        "infra/sops/secrets/booking.enc.yaml",
        r"""stripe_secret_key: {V}
adyen_api_key: {V2}
session_secret: {V3}
sops:
    age:
        - recipient: age1skpa0r28h70cx0qd63tc2yguggqqdd22j5vdtvcnph62fsy4nq4ynkn75t
    lastmodified: "2025-02-27T10:11:02Z"
    version: 3.8.1
""",
        "h23_sops",
        False,
    ),
    (
        "infra/certs/star.aurelair.aero.key",
        r"""{V}
""",
        "h23_rsa_pem",
        True,
    ),
    (
        "infra/certs/star.aurelair.aero.crt",
        r"""{V}
""",
        "h23_cert",
        False,
    ),
    (
        "infra/k8s/ingress/tls-kiosk-api.yaml",
        r"""apiVersion: v1
kind: Secret
metadata:
  name: kiosk-api-tls
  namespace: kiosk
type: kubernetes.io/tls
stringData:
  tls.key: |
    {IV}
""",
        "h23_pkcs8_pem",
        True,
    ),
    (
        "deploy/bastion/id_ed25519",
        r"""{V}
""",
        "h23_openssh_pem",
        True,
    ),
    (
        "deploy/bastion/authorized_keys",
        r"""{V}
{V2}
{V3}
""",
        "h23_ssh_pub",
        False,
    ),
    (
        "deploy/bastion/known_hosts",
        r"""crewportal-app01.int.aurelair.aero {V}
crewportal-app02.int.aurelair.aero {V2}
""",
        "h23_ssh_hostkey",
        False,
    ),
    (
        "infra/maven/settings.xml",
        r"""<settings xmlns="http://maven.apache.org/SETTINGS/1.2.0">
  <servers>
    <server>
      <id>aurel-releases</id>
      <username>ci-deployer</username>
      <password>{V}</password>
    </server>
  </servers>
  <mirrors>
    <mirror>
      <id>aurel-releases</id>
      <url>https://artifactory.int.aurelair.aero/artifactory/maven-virtual</url>
      <mirrorOf>*</mirrorOf>
    </mirror>
  </mirrors>
</settings>
""",
        "h23_artifactory",
        True,
    ),
    (
        "infra/monitoring/newrelic/newrelic.yml",
        r"""common: &default_settings
  app_name: cargo-rates
  license_key: '{V}'
  log_level: info

production:
  <<: *default_settings
""",
        "h23_newrelic",
        True,
    ),
    (
        "dwh/tools/.pypirc",
        r"""[distutils]
index-servers =
    pypi
    aurel

[pypi]
username = __token__
password = {V}

[aurel]
repository = https://artifactory.int.aurelair.aero/artifactory/api/pypi/pypi-local
username = ci-deployer
""",
        "h23_pypi",
        True,
    ),
    (
        "infra/octopus/Deploy-Loyalty.ps1",
        r"""$ErrorActionPreference = "Stop"
$octopusUrl = "https://octopus.int.aurelair.aero"
$apiKey = "{V}"
$headers = @{ "X-Octopus-ApiKey" = $apiKey }

$release = Invoke-RestMethod -Uri "$octopusUrl/api/Spaces-1/projects/points-engine/releases" -Headers $headers
$latest = $release.Items | Select-Object -First 1
Invoke-RestMethod -Method Post -Uri "$octopusUrl/api/Spaces-1/deployments" -Headers $headers `
    -Body (@{ ReleaseId = $latest.Id; EnvironmentId = "Environments-3" } | ConvertTo-Json)
""",
        "h23_octopus",
        True,
    ),
    (
        "infra/opsgenie/heartbeats.tf",
        r"""provider "opsgenie" {
  api_key = "{V}"
  api_url = "api.eu.opsgenie.com"
}

resource "opsgenie_heartbeat" "acars_bridge" {
  name          = "acars-bridge"
  interval_unit = "minutes"
  interval      = 10
  enabled       = true
  alert_message = "ACARS bridge stopped sending heartbeats"
}
""",
        "h23_opsgenie",
        True,
    ),
    (
        "infra/opsgenie/teams.tf",
        r"""resource "opsgenie_team" "crew_systems" {
  name        = "crew-systems"
  description = "Crew scheduling and roster publishing"
}

data "opsgenie_escalation" "default" {
  name = "crew-systems_escalation"
}

locals {
  # imported from the old account; ids, not keys
  legacy_integration_id = "{V}"
  legacy_schedule_id    = "{V2}"
}
""",
        "h23_uuid",
        False,
    ),
]

TEMPLATES += [
    # ================================================================ ops tooling, chat, tickets, logs
    (
        "ops/chatops/bot/config.py",
        r'''"""ARA ops Slack bot: /gate, /delay, /roster-status commands."""

SLACK_BOT_TOKEN = "{V}"
SLACK_SIGNING_CHANNEL = "#ops-control"
FLIGHTOPS_API = "https://flightops-api.int.aurelair.aero"
ALLOWED_CHANNELS = ["C05OPSCTRL1", "C05CREWSYS2"]
''',
        "h23_slack_bot",
        True,
    ),
    (
        "ops/chat-exports/ops-incidents/2025-02-19.txt",
        r"""[2025-02-19 05:41] Maria Holm: crew portal is down for LLA base, anyone on?
[2025-02-19 05:43] Jonas Ek: looking. oracle listener on crew-db02 looks stuck
[2025-02-19 05:47] Jonas Ek: restarted listener, portal back. if the app pool needs a restart the local admin on crewportal-app01 is opsadmin / {V}
[2025-02-19 05:48] Maria Holm: thanks, confirmed working from LLA
[2025-02-19 05:52] Jonas Ek: will write it up in INC-5518
""",
        "h23_pw",
        True,
    ),
    (
        "ops/chat-exports/netops/2025-03-02.txt",
        r"""[2025-03-02 09:10] Lina Berg: lounge wifi at GOT asking for new passphrase?
[2025-03-02 09:12] Ahmed Said: yes we rotated it friday. it's in the vault: {V}
[2025-03-02 09:13] Lina Berg: got it, thanks
""",
        "h23_op_ref",
        False,
    ),
    (
        "ops/tickets/INC-4471.md",
        r"""# INC-4471 - Kiosk GOT-K07 stuck in maintenance mode

**Reported:** 2025-01-09 04:55 UTC by GOT duty manager
**Status:** Resolved

## Timeline
- 05:10 Remote session failed; field tech on site.
- 05:26 Tech logged in to the kiosk maintenance menu with `kioskadmin` / `{V}` and cleared the stuck print job.
- 05:31 Kiosk back in service.

## Follow-up
- Move kiosk maintenance login to per-technician accounts (KIOSK-212).
""",
        "h23_weak_pw",
        True,
    ),
    (
        "ops/tickets/SEC-118.md",
        r"""# SEC-118 - Credential found in crew-scheduler history

A database password was committed to `application-prod.yml` in 2023 and has since been rotated.
The old value was replaced in the history with `{V}` by git-filter-repo.

Actions: rotated, history rewritten, pre-commit hook added.
""",
        "h23_masked",
        False,
    ),
    (
        "booking-engine/logs/api-2025-03-14.log",
        r"""2025-03-14T06:02:11.382Z INFO  [req 7f3a] POST /v1/bookings 201 182ms
2025-03-14T06:02:12.004Z DEBUG [req 7f3b] outbound GET https://partner-api.nordhotels-partner.net/loyalty/v1/members headers={"Authorization":"Basic {V}","Accept":"application/json"}
2025-03-14T06:02:12.301Z INFO  [req 7f3b] GET /v1/loyalty/earn-preview 200 297ms
""",
        "h23_basic_b64",
        True,
    ),
    (
        "booking-engine/logs/api-2025-03-15.log",
        r"""2025-03-15T06:02:12.004Z DEBUG [req 81c0] outbound GET https://partner-api.nordhotels-partner.net/loyalty/v1/members headers={"Authorization":"Basic {V}","Accept":"application/json"}
2025-03-15T06:02:12.301Z INFO  [req 81c0] GET /v1/loyalty/earn-preview 200 297ms
""",
        "h23_masked",
        False,
    ),
    (
        "crew-app/logs/crash-report-4.12.0-1288.txt",
        r"""Crash report - ARA Crew 4.12.0 (412) - Android 14 / Samsung SM-T736B
Time: 2025-03-11 22:41:07 UTC

Last network call:
  GET https://crew-api.aurelair.aero/v2/roster?from=2025-03-12&days=7
  Authorization: Bearer {V}
  -> 500 Internal Server Error

java.lang.IllegalStateException: roster payload missing duty period
    at aero.aurelair.crew.roster.RosterMapper.map(RosterMapper.kt:88)
""",
        "h23_jwt_token",
        True,
    ),
    (
        "ops/notify/Send-TeamsAlert.ps1",
        r"""param(
    [Parameter(Mandatory)] [string] $Title,
    [Parameter(Mandatory)] [string] $Text
)

$webhook = "{V}"
$card = @{
    "@type"    = "MessageCard"
    "@context" = "https://schema.org/extensions"
    summary    = $Title
    title      = $Title
    text       = $Text
}
Invoke-RestMethod -Method Post -Uri $webhook -ContentType "application/json" -Body ($card | ConvertTo-Json -Depth 4)
""",
        "h23_teams_webhook",
        True,
    ),
    (
        "customer-service/assistant/src/llm.ts",
        r"""import OpenAI from "openai";

const openai = new OpenAI({
  apiKey: process.env.OPENAI_API_KEY ?? "{V}",
  organization: "org-AurelAirCX",
});

export async function draftReply(question: string, bookingContext: string) {
  const res = await openai.chat.completions.create({
    model: "gpt-4o-mini",
    messages: [
      { role: "system", content: "You are Aurel Air's customer service assistant." },
      { role: "user", content: `${bookingContext}\n\n${question}` },
    ],
  });
  return res.choices[0]?.message?.content ?? "";
}
""",
        "h23_openai",
        True,
    ),
    (
        "ops/alerts/telegram_notify.py",
        r'''"""Posts AOG (aircraft on ground) alerts to the duty engineers' Telegram group."""

import requests

BOT_TOKEN = "{V}"
CHAT_ID = -1001823746510


def aog(tail: str, station: str, reason: str) -> None:
    text = f"AOG {tail} at {station}: {reason}"
    requests.post(
        f"https://api.telegram.org/bot{BOT_TOKEN}/sendMessage",
        json={"chat_id": CHAT_ID, "text": text},
        timeout=10,
    )
''',
        "h23_telegram",
        True,
    ),
    (
        "ops/jira-sync/sync.go",
        r"""package main

import (
	"fmt"
	"net/http"
	"strings"
)

const (
	jiraBase  = "https://aurelgroup.atlassian.net"
	jiraUser  = "ops-automation@aurelair.aero"
	jiraToken = "{V}"
)

func createIssue(summary string) error {
	body := fmt.Sprintf(`{"fields":{"project":{"key":"OPS"},"summary":%q,"issuetype":{"name":"Task"}}}`, summary)
	req, _ := http.NewRequest(http.MethodPost, jiraBase+"/rest/api/3/issue", strings.NewReader(body))
	req.SetBasicAuth(jiraUser, jiraToken)
	req.Header.Set("Content-Type", "application/json")
	_, err := http.DefaultClient.Do(req)
	return err
}
""",
        "h23_atlassian",
        True,
    ),
    (
        "infra/monitoring/grafana/dashboards/sync.sh",
        r"""#!/usr/bin/env bash
set -euo pipefail
GRAFANA=https://grafana.int.aurelair.aero
TOKEN={V}
for f in dashboards/*.json; do
  curl -fsS -X POST "$GRAFANA/api/dashboards/db" \
    -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    --data @"$f"
done
""",
        "h23_grafana",
        True,
    ),
    (
        "booking-engine/web/src/maps/config.ts",
        r"""export const mapsConfig = {
  // server-side geocoding for the airport-transfer add-on (restricted by IP in GCP)
  geocodingKey: "{V}",
  language: "sv",
  region: "SE",
};
""",
        "h23_google_key",
        True,
    ),
    (
        "crew-portal/crewportal/settings/production.py",
        r"""from .base import *  # noqa: F401,F403

DEBUG = False
SECRET_KEY = "{V}"
ALLOWED_HOSTS = ["crew.aurelair.aero"]
CSRF_TRUSTED_ORIGINS = ["https://crew.aurelair.aero"]
SESSION_COOKIE_SECURE = True
""",
        "h23_django_key",
        True,
    ),
    (
        "crew-portal/crewportal/settings/test.py",
        r"""from .base import *  # noqa: F401,F403

DEBUG = True
SECRET_KEY = "{V}"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
""",
        "h23_fake_token",
        False,
    ),
    (
        "crew-portal/fixtures/users.json",
        r"""[
  {
    "model": "auth.user",
    "pk": 1,
    "fields": {
      "username": "crewcontrol",
      "password": "{V}",
      "is_staff": true,
      "is_superuser": true
    }
  },
  {
    "model": "auth.user",
    "pk": 2,
    "fields": {
      "username": "planner1",
      "password": "{V2}",
      "is_staff": true,
      "is_superuser": false
    }
  }
]
""",
        "h23_pbkdf2",
        False,
    ),
    (
        "crew-portal/docs/local-dev.md",
        r"""# Running the crew portal locally

```
docker compose up -d db
python manage.py migrate
python manage.py loaddata fixtures/users.json
```

Log in at http://localhost:8000 as `crewcontrol`; the fixture password is in the team's
1Password vault. To point at a shared dev DB use:

```
DATABASE_URL=postgres://crew:{V}@pg.example.com:5432/crewportal
```
""",
        "h23_doc_pw",
        False,
    ),
    (
        "loyalty/member-web/src/auth/jwt.ts",
        r"""import jwt from "jsonwebtoken";

const JWT_SECRET = "{V}";
const ISSUER = "https://miles.aurelair.aero";

export function signMemberToken(memberNo: string, tier: string) {
  return jwt.sign({ sub: memberNo, tier }, JWT_SECRET, { issuer: ISSUER, expiresIn: "2h" });
}

export function verifyMemberToken(token: string) {
  return jwt.verify(token, JWT_SECRET, { issuer: ISSUER });
}
""",
        "h23_jwt_secret",
        True,
    ),
    (
        "infra/aws/kms/encrypted-params.json",
        r"""{
  "/ara/booking/stripe_secret_key": "{V}",
  "/ara/booking/adyen_api_key": "{V2}",
  "_comment": "ciphertext blobs from `aws kms encrypt`; decrypted at deploy time"
}
""",
        "h23_kms_blob",
        False,
    ),
    (
        "ops/postman/ARA-Partner-APIs.postman_environment.json",
        r"""{
  "id": "4c1e2a9b-7f3d-4e58-9b0a-1d6c3e8f2a57",
  "name": "ARA partners - prod",
  "values": [
    { "key": "baseUrl", "value": "https://partners.aurelair.aero", "enabled": true },
    { "key": "clientId", "value": "partner-portal", "enabled": true },
    { "key": "clientSecret", "value": "{V}", "type": "secret", "enabled": true }
  ],
  "_postman_variable_scope": "environment"
}
""",
        "h23_api_key",
        True,
    ),
    (
        "booking-engine/openapi/partner-api.yaml",
        r"""openapi: 3.0.3
info:
  title: ARA Partner API
  version: 1.4.0
components:
  securitySchemes:
    apiKey:
      type: apiKey
      in: header
      name: X-Api-Key
paths:
  /v1/availability:
    get:
      parameters:
        - in: header
          name: X-Api-Key
          required: true
          schema:
            type: string
          example: "{V}"
      responses:
        "200":
          description: Seat availability per flight
""",
        "h23_doc_placeholder",
        False,
    ),
    (
        "netops/wifi/guest-portal/docker-compose.yml",
        r"""services:
  portal:
    image: registry.aurelair.aero/netops/captive-portal:2.3.1
    environment:
      RADIUS_SECRET: ${RADIUS_SECRET:-{V}}
      UNIFI_URL: https://unifi.int.aurelair.aero:8443
    ports:
      - "8080:8080"
""",
        "h23_radius_secret",
        True,
    ),
    (
        "baggage/bag-events/settings.py",
        r"""import os

KAFKA_BOOTSTRAP = os.getenv("KAFKA_BOOTSTRAP", "kafka-1.int.aurelair.aero:9094")
KAFKA_USER = os.getenv("KAFKA_USER", "bagtrack-consumer")
KAFKA_PASSWORD = os.getenv("KAFKA_PASSWORD", "{V}")
REDIS_URL = os.getenv("REDIS_URL", "redis://localhost:6379/0")
""",
        "h23_pw",
        True,
    ),
    (
        "crew-scheduler/src/main/resources/application-staging.yml",
        r"""spring:
  datasource:
    url: jdbc:oracle:thin:@//ora-crew-stg.int.aurelair.aero:1521/CREWSTG
    username: CREW_APP
    password: ${CREW_DB_PASSWORD:{V}}
""",
        "h23_db_pw",
        True,
    ),
]
