"""Blind part ``heldout26``: a hospital group, Marrowfield Health Partners (MHP: Marrowfield
General Hospital, St. Osric's Children's Hospital, Kettlebeck Community Hospital, the Dutch
partner site Ziekenhuis Hoorndijk running ChipSoft HiX, and the Brazilian teleradiology partner
Hospital São Tadeu running Philips Tasy), its interface, imaging, lab, pharmacy, research and IT
teams and their vendors. Files are the interface engine (Mirth Connect properties and channel XML,
Rhapsody notes, HL7 v2 samples, MLLP bridges, HAPI FHIR servers, SMART backend-services clients and
JWKs, HiX and Tasy connectors), imaging (Orthanc and dcm4chee configs, DICOMweb scripts, storescu
batch files, teleradiology SFTP pushes, study manifests, OHIF viewer config), lab systems (LIS
middleware ini files, reference-lab SFTP, Oracle sqlplus extracts, Perl HL7 result scripts, Java
and Go LIS clients), pharmacy (dispensing cabinet interfaces, e-prescribing Django settings,
formulary sync appsettings, PowerShell connectors), the patient portal and mobile app (Node and
TypeScript API, .env files, Stripe, SendGrid, Twilio, FCM and APNs, Android keystore properties,
fastlane, Swift and Kotlin config, i18n bundles), medical-device integration (Mosquitto bridges and
password files, infusion pump gateways, C and Rust vitals collectors, Azure IoT device strings,
WireGuard tunnels, biomed asset lists), the research data platform (Jupyter notebooks, JupyterHub,
Databricks, REDCap pulls, OMOP ETL in Airflow, R and Scala, dbt profiles, pseudonymisation config),
identity (SSSD, AD PowerShell, ADFS, LDIF, Keycloak realm exports, Okta, Entra ID, Kerberos
keytabs), IT infrastructure (Cisco and FortiGate configs, iDRAC inventories, Ansible, VMware,
FreeRADIUS, BIND TSIG keys, Zabbix and Nagios, CIFS credential files), CI/CD (GitHub Actions,
GitLab CI, Jenkins, Azure Pipelines, npm, pip, NuGet, Maven, SonarQube), cloud (Terraform for
Azure and AWS, Kubernetes secrets and sealed secrets, Helm values, SOPS, GCP service accounts,
Datadog, Grafana and New Relic agents), runbooks in English, Dutch and Brazilian Portuguese, Teams
and Slack chat exports, and ServiceNow and Jira tickets. Written blind (without seeing the
scanner, its rules or other parts' templates).

Look-alikes sit in the same kinds of files under the same key names: password hashes (bcrypt,
argon2, PBKDF2, SSHA, apr1, Mosquitto ``$7$``, Cisco type 5/8/9, Keycloak credential values,
Jupyter hashed passwords), values encrypted at rest (Ansible Vault, SOPS, sealed secrets, Jasypt,
DPAPI blobs, KMS ciphertext, FortiGate ``ENC``, Maven ``{...}``), references to environment
variables and secret stores in each language and tool, placeholders and redactions in English,
Dutch, Portuguese and other languages, public material (certificates, public keys, SSH and
WireGuard public keys, certificate thumbprints, publishable and mobile app ids), identifiers of
the domain shaped like secrets (DICOM UIDs, accession numbers and MRNs, HL7 control ids, device
UDIs and serials, pseudonymised research ids, SIDs, GUIDs, digests and lockfile checksums), UI
text about passwords, documented example credentials, credentials on documentation hosts, and
test values that say they are fake.
"""

from __future__ import annotations

import base64
import json
import string
import struct
import uuid
import zlib
from urllib.parse import quote

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
B32LOW = "abcdefghijklmnopqrstuvwxyz234567"
CRYPT64 = "./" + ALNUM
PW_SYMBOLS = "!*-_.+=@"


class Heldout26Values(evalset.Values):
    """Value generators of the heldout26 part; every name starts with ``h26_``."""

    def __init__(self, seed: int, flavour: str) -> None:
        super().__init__(seed, flavour)
        self.words = [
            "triage",
            "suture",
            "scalpel",
            "saline",
            "gurney",
            "bedside",
            "vitals",
            "plasma",
            "cortex",
            "forceps",
            "infusion",
            "telemetry",
            "radiant",
            "ventricle",
            "tonsil",
            "marrow",
        ]
        self.users = [
            "mirth_intf",
            "pacs_ro",
            "lis_feed",
            "rx_sync",
            "portal_api",
            "fhir_svc",
            "orthanc",
            "svc_backup",
            "research_etl",
            "dicom_router",
            "hix_koppeling",
            "tasy_integ",
        ]

    # ------------------------------------------------------------------ helpers (not slots)
    def h26_util_b64(self, n: int, urlsafe: bool = False, pad: bool = True) -> str:
        raw = self.rng.randbytes(n)
        text = (base64.urlsafe_b64encode(raw) if urlsafe else base64.b64encode(raw)).decode()
        return text if pad else text.rstrip("=")

    def h26_util_crc(self, prefix: str) -> str:
        body = self.s(30, ALNUM)
        crc = zlib.crc32(body.encode())
        check = ""
        while crc:
            crc, rest = divmod(crc, 62)
            check = B62[rest] + check
        return f"{prefix}_{body}{check.rjust(6, '0')}"

    def h26_util_armor(self, label: str, der: bytes, width: int = 64) -> str:
        body = base64.b64encode(der).decode()
        rows = [body[i : i + width] for i in range(0, len(body), width)]
        return f"-----BEGIN {label}-----\n" + "\n".join(rows) + f"\n-----END {label}-----"

    def h26_util_rsa_der(self) -> bytes:
        head = bytes.fromhex("308204a40201000282010100")
        return head + self.rng.randbytes(1192 - len(head))

    def h26_util_pkcs8_der(self) -> bytes:
        head = bytes.fromhex(
            "308204be020100300d06092a864886f70d0101010500048204a8308204a40201000282010100"
        )
        return head + self.rng.randbytes(1218 - len(head))

    def h26_util_ec_der(self) -> bytes:
        return (
            bytes.fromhex("30770201010420")
            + self.rng.randbytes(32)
            + bytes.fromhex("a00a06082a8648ce3d030107a14403420004")
            + self.rng.randbytes(64)
        )

    def h26_util_sshstr(self, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + data

    def h26_util_user(self) -> str:
        return self.pick(self.users)

    def h26_util_host(self) -> str:
        return self.pick(
            [
                "mirthdb01.mhp.local",
                "omop-pg02.research.mhp.local",
                "lisdb-scan.mhp.local",
                "portal-db.postgres.database.azure.com",
                "fhir-pg.mhp.local",
                "rxdb01.kch.mhp.local",
            ]
        )

    # ------------------------------------------------------------------ positives: passwords
    def h26_pw(self) -> str:
        shape = self.rng.randrange(6)
        word = self.pick(self.words)
        if shape == 0:
            return word.capitalize() + str(self.rng.randrange(10, 9999)) + self.pick(list("!*.@"))
        if shape == 1:
            return self.s(1, string.ascii_letters) + self.s(
                self.rng.randrange(13, 21), ALNUM + PW_SYMBOLS
            )
        if shape == 2:
            other = self.pick([w for w in self.words if w != word])
            return f"{word.capitalize()}-{other.capitalize()}-{self.s(2, DIGITS)}"
        if shape == 3:
            return "Mhp" + self.s(11, ALNUM) + self.pick(list("!*."))
        if shape == 4:
            return self.s(18, ALNUM)
        leet = word.replace("a", "@").replace("o", "0").replace("e", "3").replace("i", "1")
        return leet[0].upper() + leet[1:] + "*" + self.s(4, DIGITS)

    def h26_weak_pw(self) -> str:
        shape = self.rng.randrange(4)
        if shape == 0:
            return self.pick(
                [
                    "Welcome1!",
                    "Password123",
                    "Hospital1!",
                    "Marrowfield1",
                    "Radiology2023",
                    "Nurse2024!",
                    "Pacs1234",
                    "Qwerty123!",
                    "Zorg2024!",
                    "Senha@123",
                ]
            )
        if shape == 1:
            return "Marrowfield" + str(self.rng.randrange(2016, 2026)) + self.pick(["", "!", "*"])
        if shape == 2:
            return self.pick(self.words) + self.pick(["1", "123", "2024", "!"])
        return self.pick(["Summer", "Winter", "Zomer", "Inverno", "Lente"]) + str(
            self.rng.randrange(2019, 2026)
        )

    def h26_vendor_default(self) -> str:
        return self.pick(["admin", "ADMIN", "Passw0rd", "P@ssw0rd", "admin123", "1234", "service"])

    def h26_idrac_default(self) -> str:
        return "calvin"

    def h26_url_pw(self) -> str:
        if self.rng.randrange(2):
            return self.pick(self.words).capitalize() + self.s(5, DIGITS)
        return self.s(1, string.ascii_letters) + self.s(self.rng.randrange(14, 22), ALNUM + "-_.")

    def h26_ueqp_slash(self) -> str:
        user = self.pick(["lisread", "pharm", "pacsadm", "hl7user", "rxsync", "mirthdb", "hixrep"])
        return f"{user}/{user}"

    def h26_ueqp_colon(self) -> str:
        user = self.pick(["reporter", "pacsview", "labuser", "tasy", "dcm4che", "omop", "nurse"])
        return f"{user}:{user}"

    def h26_pg_uri(self) -> str:
        db = self.pick(["omop_cdm", "mirthdb", "portal", "fhir", "pharmacy", "lims"])
        return (
            f"postgresql://{self.h26_util_user()}:{self.h26_url_pw()}@"
            f"{self.h26_util_host()}:5432/{db}"
        )

    def h26_amqp_uri(self) -> str:
        vhost = self.pick(["hl7", "adt", "orders", "results"])
        return f"amqps://{self.pick(['hl7router', 'mirth_intf', 'adt_pub'])}:{self.h26_url_pw()}@mq01.mhp.local:5671/{vhost}"

    def h26_redis_uri(self) -> str:
        if self.rng.randrange(2):
            return f"rediss://:{self.h26_util_b64(32, pad=True)}@mhp-portal-cache.redis.cache.windows.net:6380/0"
        return f"redis://default:{self.h26_url_pw()}@portal-redis.mhp.local:6379/2"

    def h26_mssql_conn(self) -> str:
        db = self.pick(["Formulary", "PharmacyOps", "RxAudit", "Dispense"])
        host = self.pick(["sql-rx01.mhp.local", "mhp-rx-prod.database.windows.net"])
        return (
            f"Server=tcp:{host},1433;Database={db};User Id={self.pick(['rx_sync', 'formulary_app'])};"
            f"Password={self.h26_pw()};Encrypt=True;TrustServerCertificate=False;"
        )

    def h26_jdbc_oracle(self) -> str:
        return f"jdbc:oracle:thin:{self.pick(['LIS_APP', 'LIS_RPT', 'SQ_INTF'])}/{self.h26_url_pw()}@//lisdb-scan.mhp.local:1521/LISPROD"

    def h26_basic(self) -> str:
        user = self.pick([*self.users, "svc-stow", "teleradio"])
        return base64.b64encode(f"{user}:{self.h26_pw()}".encode()).decode()

    def h26_k8s_b64(self) -> str:
        return base64.b64encode(self.h26_pw().encode()).decode()

    def h26_snmp_community(self) -> str:
        if self.rng.randrange(2):
            return self.s(16, ALNUM)
        return f"mhp{self.pick(self.words)}{self.s(3, DIGITS)}{self.pick(['RO', 'RW'])}"

    def h26_app_password(self) -> str:
        if self.rng.randrange(2):
            return self.s(16, string.ascii_lowercase)
        return " ".join(self.s(4, string.ascii_lowercase) for _ in range(4))

    # ------------------------------------------------------------------ positives: tokens
    def h26_github(self) -> str:
        return self.h26_util_crc(self.pick(["ghp", "ghp", "gho", "ghs"]))

    def h26_github_fine(self) -> str:
        return f"github_pat_11{self.s(20, UPNUM)}_{self.s(59, ALNUM)}"

    def h26_gitlab(self) -> str:
        return "glpat-" + self.s(20, URLSAFE)

    def h26_npm(self) -> str:
        return self.h26_util_crc("npm")

    def h26_pypi(self) -> str:
        return "pypi-AgEIcHlwaS5vcmc" + self.s(self.rng.randrange(70, 150), URLSAFE)

    def h26_docker_pat(self) -> str:
        return "dckr_pat_" + self.s(27, URLSAFE)

    def h26_ado_pat(self) -> str:
        return self.s(52, B32LOW)

    def h26_sonar(self) -> str:
        return self.pick(["squ_", "sqp_"]) + self.s(40, HEX)

    def h26_slack_bot(self) -> str:
        return f"xoxb-{self.s(12, DIGITS)}-{self.s(13, DIGITS)}-{self.s(24, ALNUM)}"

    def h26_slack_webhook(self) -> str:
        return (
            f"https://hooks.slack.com/services/T{self.s(10, UPNUM)}/B{self.s(10, UPNUM)}/"
            f"{self.s(24, ALNUM)}"
        )

    def h26_teams_webhook(self) -> str:
        ids = [str(uuid.UUID(int=self.rng.getrandbits(128), version=4)) for _ in range(3)]
        return (
            f"https://marrowfieldhealth.webhook.office.com/webhookb2/{ids[0]}@{ids[1]}"
            f"/IncomingWebhook/{self.s(32, HEX)}/{ids[2]}"
        )

    def h26_util_aws_id(self) -> str:
        return "AKIA" + self.s(16, string.ascii_uppercase + "234567")

    def h26_util_aws_secret(self) -> str:
        return self.s(1, ALNUM) + self.s(39, ALNUM + "/+")

    def h26_aws_ini_pair(self) -> str:
        return (
            f"aws_access_key_id = {self.h26_util_aws_id()}\n"
            f"aws_secret_access_key = {self.h26_util_aws_secret()}"
        )

    def h26_aws_env_pair(self) -> str:
        return (
            f"export AWS_ACCESS_KEY_ID={self.h26_util_aws_id()}\n"
            f"export AWS_SECRET_ACCESS_KEY={self.h26_util_aws_secret()}"
        )

    def h26_aws_tf_pair(self) -> str:
        return f'aws_access_key = "{self.h26_util_aws_id()}"\naws_secret_key = "{self.h26_util_aws_secret()}"'

    def h26_azure_secret(self) -> str:
        return self.s(3, ALNUM + "_~.") + self.s(1, DIGITS) + "Q~" + self.s(34, ALNUM + "_~.-")

    def h26_azure_storage_conn(self) -> str:
        account = self.pick(["stmhppacsarchive", "stmhpresearchraw", "stmhpportaldocs"])
        return (
            f"DefaultEndpointsProtocol=https;AccountName={account};"
            f"AccountKey={self.h26_util_b64(64)};EndpointSuffix=core.windows.net"
        )

    def h26_azure_sb_conn(self) -> str:
        ns = self.pick(["sb-mhp-hl7-prod", "sb-mhp-orders", "sb-mhp-devices"])
        return (
            f"Endpoint=sb://{ns}.servicebus.windows.net/;SharedAccessKeyName="
            f"{self.pick(['RootManageSharedAccessKey', 'adt-sender', 'orders-listen'])};"
            f"SharedAccessKey={self.h26_util_b64(32)}"
        )

    def h26_azure_iot_conn(self) -> str:
        return (
            "HostName=mhp-devices-prod.azure-devices.net;"
            f"DeviceId=vitals-gw-{self.s(3, DIGITS)};SharedAccessKey={self.h26_util_b64(32)}"
        )

    def h26_azure_sas_url(self) -> str:
        sig = quote(self.h26_util_b64(32), safe="")
        container = self.pick(["dicom-cold", "pacs-backup", "dicom-export"])
        return (
            f"https://stmhppacsarchive.blob.core.windows.net/{container}?sv=2022-11-02&ss=b"
            f"&srt=co&sp=rwdlacup&se=2026-03-31T21:59:59Z&st=2025-01-01T08:00:00Z&spr=https&sig={sig}"
        )

    def h26_gcp_sa_key(self) -> str:
        return (
            self.h26_util_armor("PRIVATE KEY", self.h26_util_pkcs8_der()).replace("\n", "\\n")
            + "\\n"
        )

    def h26_google_key(self) -> str:
        return "AIza" + self.s(35, URLSAFE)

    def h26_openai(self) -> str:
        return f"sk-proj-{self.s(58, URLSAFE)}T3BlbkFJ{self.s(58, URLSAFE)}"

    def h26_anthropic(self) -> str:
        return f"sk-ant-api03-{self.s(93, URLSAFE)}AA"

    def h26_hf(self) -> str:
        return "hf_" + self.s(34, string.ascii_letters)

    def h26_databricks(self) -> str:
        return "dapi" + self.s(32, HEX) + self.pick(["", "-2", "-3"])

    def h26_sendgrid(self) -> str:
        return f"SG.{self.s(22, URLSAFE)}.{self.s(43, URLSAFE)}"

    def h26_twilio_token(self) -> str:
        return self.s(32, HEX)

    def h26_stripe_live(self) -> str:
        return self.pick(["sk_live_51", "rk_live_51"]) + self.s(97, ALNUM)

    def h26_datadog_api(self) -> str:
        return self.s(32, HEX)

    def h26_okta(self) -> str:
        return "00" + self.s(40, URLSAFE)

    def h26_atlassian(self) -> str:
        return "ATATT3xFfGF0" + self.s(171, URLSAFE) + "=" + self.s(8, HEXU)

    def h26_grafana(self) -> str:
        return f"glsa_{self.s(32, ALNUM)}_{self.s(8, HEX)}"

    def h26_newrelic(self) -> str:
        return "NRAK-" + self.s(27, UPNUM)

    def h26_sentry_token(self) -> str:
        claims = {
            "iat": 1710000000 + self.rng.randrange(10**7),
            "url": "https://sentry.io",
            "region_url": "https://de.sentry.io",
            "org": "marrowfield-health",
        }
        body = base64.b64encode(json.dumps(claims, separators=(",", ":")).encode()).decode()
        return f"sntrys_{body.rstrip('=')}_{self.s(43, ALNUM + '+/')}"

    def h26_vault_token(self) -> str:
        if self.rng.randrange(2):
            return "hvs." + self.s(24, ALNUM)
        return "hvs.CAESI" + self.s(86, URLSAFE)

    def h26_fcm_key(self) -> str:
        return f"AAAA{self.s(7, URLSAFE)}:APA91b{self.s(134, URLSAFE)}"

    def h26_oauth_secret(self) -> str:
        shape = self.rng.randrange(3)
        if shape == 0:
            return self.s(32, ALNUM)
        if shape == 1:
            return self.s(40, URLSAFE)
        return self.s(64, HEX)

    def h26_jwt_secret(self) -> str:
        shape = self.rng.randrange(3)
        if shape == 0:
            return self.s(64, HEX)
        if shape == 1:
            return self.h26_util_b64(48)
        return self.s(48, ALNUM)

    def h26_session_key(self) -> str:
        shape = self.rng.randrange(4)
        if shape == 0:
            return self.s(50, string.ascii_lowercase + DIGITS + "!@%^&*(-_=+)")
        if shape == 1:
            return self.s(128, HEX)
        if shape == 2:
            return self.h26_util_b64(32, urlsafe=True, pad=False)
        return "base64:" + self.h26_util_b64(32)

    def h26_hmac_key(self) -> str:
        if self.rng.randrange(2):
            return self.s(64, HEX)
        return self.h26_util_b64(32)

    def h26_tsig(self) -> str:
        return self.h26_util_b64(32)

    def h26_wg_private(self) -> str:
        return self.h26_util_b64(32)

    def h26_redcap_token(self) -> str:
        return self.s(32, HEXU)

    def h26_jupyter_token(self) -> str:
        return self.s(48, HEX)

    def h26_jwk_d(self) -> str:
        return self.h26_util_b64(32, urlsafe=True, pad=False)

    def h26_jwt(self) -> str:
        def part(obj: dict[str, object]) -> str:
            raw = json.dumps(obj, separators=(",", ":")).encode()
            return base64.urlsafe_b64encode(raw).decode().rstrip("=")

        iat = 1718000000 + self.rng.randrange(10**7)
        header = part({"alg": "RS256", "typ": "JWT", "kid": self.s(22, URLSAFE)})
        payload = part(
            {
                "iss": "https://login.mhp.org/realms/clinical",
                "sub": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
                "aud": self.pick(["dicomweb", "fhir-r4", "lis-api"]),
                "scope": self.pick(["system/ImagingStudy.read", "system/*.read", "user/*.*"]),
                "iat": iat,
                "exp": iat + 3600,
            }
        )
        return f"{header}.{payload}.{self.h26_util_b64(256, urlsafe=True, pad=False)}"

    def h26_keytab_b64(self) -> str:
        realm = b"MHP.LOCAL"
        comps = [b"HTTP", b"fhir-gw.mhp.local"]
        entry = struct.pack(">H", len(comps)) + struct.pack(">H", len(realm)) + realm
        for comp in comps:
            entry += struct.pack(">H", len(comp)) + comp
        entry += struct.pack(">IIB", 1, 1700000000 + self.rng.randrange(10**7), 3)
        entry += struct.pack(">HH", 18, 32) + self.rng.randbytes(32)
        raw = b"\x05\x02" + struct.pack(">i", len(entry)) + entry
        return base64.b64encode(raw).decode()

    # ------------------------------------------------------------------ positives: private keys
    def h26_rsa_key(self) -> str:
        return self.h26_util_armor("RSA PRIVATE KEY", self.h26_util_rsa_der())

    def h26_pkcs8(self) -> str:
        return self.h26_util_armor("PRIVATE KEY", self.h26_util_pkcs8_der())

    def h26_ec_key(self) -> str:
        return self.h26_util_armor("EC PRIVATE KEY", self.h26_util_ec_der())

    def h26_apns_p8(self) -> str:
        der = bytes.fromhex("308193020100301306072a8648ce3d020106082a8648ce3d0301070479")
        return self.h26_util_armor("PRIVATE KEY", der + self.h26_util_ec_der())

    def h26_openssh(self) -> str:
        st = self.h26_util_sshstr
        pub = self.rng.randbytes(32)
        blob = st(b"ssh-ed25519") + st(pub)
        check = self.rng.randbytes(4)
        comment = f"{self.h26_util_user()}@mhp-jump01".encode()
        priv = check + check + blob + st(self.rng.randbytes(32) + pub) + st(comment)
        pad = 1
        while len(priv) % 8:
            priv += bytes([pad])
            pad += 1
        raw = (
            b"openssh-key-v1\x00"
            + st(b"none")
            + st(b"none")
            + st(b"")
            + struct.pack(">I", 1)
            + st(blob)
            + st(priv)
        )
        return self.h26_util_armor("OPENSSH PRIVATE KEY", raw, width=70)

    # ------------------------------------------------------------------ negatives: references
    def h26_placeholder(self) -> str:
        return self.pick(
            [
                "<your-password-here>",
                "<vul-hier-het-wachtwoord-in>",
                "<sua-senha-aqui>",
                "changeme",
                "CHANGE_ME",
                "xxxxxxxxxxxx",
                "xxxx-xxxx-xxxx-xxxx",
                "********",
                "your-key-here",
                "jouw-sleutel-hier",
                "sua-chave-aqui",
                "<dein-passwort>",
                "REPLACE_ME",
                "<a-remplir>",
                "TODO-invullen",
                "PREENCHER",
                "<api-token>",
            ]
        )

    def h26_placeholder_nl(self) -> str:
        return self.pick(
            [
                "<vul-hier-het-wachtwoord-in>",
                "jouw-sleutel-hier",
                "TODO-invullen",
                "<wachtwoord>",
                "********",
                "xxxxxxxx",
                "${OMOP_PASSWORD}",
                "zie-kluis",
            ]
        )

    def h26_redacted(self) -> str:
        return self.pick(
            [
                "[REDACTED]",
                "<redacted>",
                "***",
                "[VERWIJDERD]",
                "[REMOVIDO]",
                "●●●●●●●●",
                "(zie kluis)",
                "(ver cofre)",
                "<removed by security>",
                "****************",
            ]
        )

    def h26_env_brace(self) -> str:
        return self.pick(
            ["${ORTHANC_ADMIN_PW}", "${VIEWER_PW}", "${DICOMWEB_PW}", "${PACS_RO_PASSWORD}"]
        )

    def h26_py_ref(self) -> str:
        return self.pick(
            [
                "os.environ['OMOP_PASSWORD']",
                "os.getenv('OMOP_DB_PASSWORD')",
                "dbutils.secrets.get(scope='research', key='omop-pw')",
                "keyring.get_password('omop', 'research_etl')",
                "settings.OMOP_PASSWORD",
                "Variable.get('omop_password')",
            ]
        )

    def h26_js_ref(self) -> str:
        return self.pick(
            [
                "process.env.STRIPE_SECRET_KEY",
                "process.env['SENDGRID_API_KEY']",
                "config.get('mail.apiKey')",
                "await secrets.get('twilio-token')",
                "process.env.PORTAL_JWT_SECRET ?? ''",
            ]
        )

    def h26_cs_ref(self) -> str:
        return self.pick(
            [
                'Environment.GetEnvironmentVariable("PYXIS_PASSWORD")',
                'configuration["Pyxis:Password"]',
                '(await secretClient.GetSecretAsync("pyxis-pw")).Value.Value',
                "_options.Value.Password",
            ]
        )

    def h26_ps_ref(self) -> str:
        return self.pick(
            [
                "$env:PYXIS_SVC_PASSWORD",
                "(Get-Secret -Name PyxisSvc -AsPlainText)",
                "$cred.GetNetworkCredential().Password",
                "(Get-AzKeyVaultSecret -VaultName kv-mhp-prod -Name pyxis-svc -AsPlainText)",
            ]
        )

    def h26_jvm_ref(self) -> str:
        return self.pick(
            [
                'System.getenv("LIS_DB_PASSWORD")',
                "BuildConfig.PORTAL_API_KEY",
                'props.getProperty("lis.password")',
                "secrets.lisPassword()",
            ]
        )

    def h26_gha_ref(self) -> str:
        return self.pick(
            [
                "${{ secrets.ACR_PASSWORD }}",
                "${{ secrets.AZURE_CLIENT_SECRET }}",
                "${{ secrets.NPM_TOKEN }}",
                "${{ secrets.PORTAL_DEPLOY_SECRET }}",
                "${{ steps.kv.outputs.acr-password }}",
            ]
        )

    def h26_gitlab_ref(self) -> str:
        return self.pick(
            ["$CI_REGISTRY_PASSWORD", "${KUBE_TOKEN}", "$CI_JOB_TOKEN", "$DEPLOY_TOKEN"]
        )

    def h26_tf_ref(self) -> str:
        return self.pick(
            [
                "var.pacs_archive_sa_key",
                "azurerm_key_vault_secret.mirth_db.value",
                "random_password.mirth.result",
                "data.azurerm_key_vault_secret.sql_admin.value",
                "module.secrets.sql_admin_password",
            ]
        )

    def h26_ansible_ref(self) -> str:
        return self.pick(
            [
                '"{{ vault_pacs_backup_password }}"',
                "\"{{ lookup('community.hashi_vault.hashi_vault', 'secret=kv/data/pacs:backup_pw') }}\"",
                "\"{{ lookup('env', 'IDRAC_PASSWORD') }}\"",
                '"{{ idrac_root_pw }}"',
            ]
        )

    def h26_vault_ref(self) -> str:
        shape = self.rng.randrange(5)
        if shape == 0:
            return (
                f"arn:aws:secretsmanager:eu-west-1:{self.s(12, DIGITS)}:secret:mirth/prod-db-"
                + self.s(6, ALNUM)
            )
        return self.pick(
            [
                "vault:secret/data/mirth/prod#db_password",
                "azurekv://kv-mhp-prod/mirth-db-password",
                "@Microsoft.KeyVault(SecretUri=https://kv-mhp-prod.vault.azure.net/secrets/mirth-db/)",
                "op://Interfaces/Mirth prod DB/password",
            ]
        )

    def h26_secret_name(self) -> str:
        return self.pick(
            [
                "mirth-db-credentials",
                "fhir-postgres-auth",
                "portal-stripe",
                "orthanc-users",
                "acr-pull-secret",
                "research-omop-db",
            ]
        )

    # ------------------------------------------------------------------ negatives: hashes, ciphertext
    def h26_pw_hash(self) -> str:
        shape = self.rng.randrange(5)
        if shape == 0:
            return self.pick(["$2b$12$", "$2y$10$", "$2a$11$"]) + self.s(53, CRYPT64)
        if shape == 1:
            salt = self.h26_util_b64(16, pad=False).rstrip("=")
            return f"$argon2id$v=19$m=65536,t=3,p=4${salt}${self.h26_util_b64(32).rstrip('=')}"
        if shape == 2:
            return f"pbkdf2_sha256$720000${self.s(22, ALNUM)}${self.h26_util_b64(32)}"
        if shape == 3:
            return f"$6$rounds=656000${self.s(16, CRYPT64)}${self.s(86, CRYPT64)}"
        return "{SSHA}" + self.h26_util_b64(28)

    def h26_ldap_ssha(self) -> str:
        if self.rng.randrange(2):
            return "{SSHA}" + self.h26_util_b64(28)
        return "{SSHA512}" + self.h26_util_b64(72)

    def h26_htpasswd_hash(self) -> str:
        shape = self.rng.randrange(3)
        if shape == 0:
            return f"$apr1${self.s(8, CRYPT64)}${self.s(22, CRYPT64)}"
        if shape == 1:
            return "$2y$05$" + self.s(53, CRYPT64)
        return "{SHA}" + self.h26_util_b64(20)

    def h26_mosq_hash(self) -> str:
        return f"$7$101${self.h26_util_b64(12)}${self.h26_util_b64(64)}"

    def h26_cisco_hash(self) -> str:
        cisco64 = "./" + DIGITS + string.ascii_uppercase + string.ascii_lowercase
        shape = self.rng.randrange(3)
        if shape == 0:
            return f"9 $9${self.s(14, cisco64)}${self.s(43, cisco64)}"
        if shape == 1:
            return f"8 $8${self.s(14, cisco64)}${self.s(43, cisco64)}"
        return f"5 $1${self.s(4, cisco64)}${self.s(22, cisco64)}"

    def h26_keycloak_hash(self) -> str:
        return self.h26_util_b64(64)

    def h26_jupyter_hash(self) -> str:
        if self.rng.randrange(2):
            salt = self.h26_util_b64(16).rstrip("=")
            digest = self.h26_util_b64(32).rstrip("=")
            return f"argon2:$argon2id$v=19$m=10240,t=10,p=8${salt}${digest}"
        return f"sha1:{self.s(12, HEX)}:{self.s(40, HEX)}"

    def h26_ansible_vault(self) -> str:
        body = self.s(80 * 5 + 2 * self.rng.randrange(10, 30), HEX)
        rows = [body[i : i + 80] for i in range(0, len(body), 80)]
        return "$ANSIBLE_VAULT;1.1;AES256\n" + "\n".join(rows)

    def h26_sops(self) -> str:
        data = self.h26_util_b64(self.rng.randrange(12, 40))
        iv = self.h26_util_b64(32)
        tag = self.h26_util_b64(16)
        return f"ENC[AES256_GCM,data:{data},iv:{iv},tag:{tag},type:str]"

    def h26_jasypt(self) -> str:
        return "ENC(" + self.h26_util_b64(self.rng.choice([32, 48])) + ")"

    def h26_dpapi(self) -> str:
        head = bytes.fromhex("01000000d08c9ddf0115d1118c7a00c04fc297eb01000000")
        return base64.b64encode(head + self.rng.randbytes(self.rng.randrange(150, 230))).decode()

    def h26_kms_blob(self) -> str:
        raw = bytes.fromhex("0102020078") + self.rng.randbytes(self.rng.choice([151, 181]))
        return base64.b64encode(raw).decode()

    def h26_sealed(self) -> str:
        return "AgB" + self.h26_util_b64(self.rng.choice([372, 420, 540]))

    def h26_fortinet_enc(self) -> str:
        return "ENC " + self.h26_util_b64(self.rng.choice([60, 72, 84]))

    def h26_maven_enc(self) -> str:
        return "{" + self.h26_util_b64(32) + "}"

    # ------------------------------------------------------------------ negatives: public material
    def h26_cert(self) -> str:
        head = bytes.fromhex("308203a130820289a003020102021440")
        return self.h26_util_armor("CERTIFICATE", head + self.rng.randbytes(933 - len(head)))

    def h26_pubkey_pem(self) -> str:
        head = bytes.fromhex("30820122300d06092a864886f70d01010105000382010f003082010a0282010100")
        der = head + self.rng.randbytes(256) + bytes.fromhex("0203010001")
        return self.h26_util_armor("PUBLIC KEY", der)

    def h26_ssh_pub(self) -> str:
        st = self.h26_util_sshstr
        who = f"{self.pick(['jdevries', 'asilva', 'mokafor', 'rpatel', 'ansible'])}@mhp"
        if self.rng.randrange(2):
            blob = st(b"ssh-ed25519") + st(self.rng.randbytes(32))
            return f"ssh-ed25519 {base64.b64encode(blob).decode()} {who}"
        blob = st(b"ssh-rsa") + st(b"\x01\x00\x01") + st(b"\x00" + self.rng.randbytes(256))
        return f"ssh-rsa {base64.b64encode(blob).decode()} {who}"

    def h26_wg_public(self) -> str:
        return self.h26_util_b64(32)

    def h26_thumbprint(self) -> str:
        return self.s(40, HEXU)

    def h26_publishable(self) -> str:
        return self.pick(["pk_live_51", "pk_live_51", "pk_test_51"]) + self.s(97, ALNUM)

    def h26_mapbox_pk(self) -> str:
        user = base64.b64encode(b'{"u":"mhp-maps","a":"' + self.s(12, LOWNUM).encode() + b'"}')
        return f"pk.{user.decode().rstrip('=')}.{self.s(22, URLSAFE)}"

    def h26_mobile_id(self) -> str:
        return f"1:{self.s(12, DIGITS)}:android:{self.s(16, HEX)}"

    # ------------------------------------------------------------------ negatives: identifiers
    def h26_dicom_uid(self) -> str:
        root = self.pick(
            [
                "1.2.840.113619.2.55.3",
                "1.3.12.2.1107.5.2.43",
                "1.2.826.0.1.3680043.9.7433",
                "1.3.6.1.4.1.14519.5.2.1",
            ]
        )
        tail = ".".join(
            str(self.rng.randrange(1, 10 ** self.rng.randrange(3, 11))) for _ in range(4)
        )
        return f"{root}.{tail}"

    def h26_clinical_id(self) -> str:
        shape = self.rng.randrange(4)
        if shape == 0:
            return "MFG" + self.s(8, DIGITS)
        if shape == 1:
            return "ACC" + self.s(4, DIGITS) + self.s(6, UPNUM)
        if shape == 2:
            return "E" + self.s(10, DIGITS)
        return "HRN-" + self.s(7, DIGITS)

    def h26_hl7_ctrl(self) -> str:
        if self.rng.randrange(2):
            return self.s(20, UPNUM)
        return f"MFG{self.rng.randrange(2024, 2026)}{self.s(10, DIGITS)}"

    def h26_device_id(self) -> str:
        shape = self.rng.randrange(4)
        if shape == 0:
            return f"(01)0{self.s(13, DIGITS)}(21){self.s(10, UPNUM)}"
        if shape == 1:
            return ":".join(self.s(2, HEXU) for _ in range(6))
        if shape == 2:
            return "SN" + self.s(12, UPNUM)
        return self.s(15, DIGITS)

    def h26_digest(self) -> str:
        return self.s(64, HEX)

    def h26_guid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def h26_sid(self) -> str:
        groups = "-".join(str(self.rng.randrange(10**9, 4 * 10**9)) for _ in range(3))
        return f"S-1-5-21-{groups}-{self.rng.randrange(1100, 60000)}"

    def h26_integrity(self) -> str:
        return "sha512-" + self.h26_util_b64(64)

    def h26_gosum(self) -> str:
        return "h1:" + self.h26_util_b64(32)

    def h26_pseudo_id(self) -> str:
        if self.rng.randrange(2):
            return self.s(64, HEX)
        return "PSN-" + self.s(16, HEXU)

    # ------------------------------------------------------------------ negatives: text and examples
    def h26_ui_nl(self) -> str:
        return self.pick(
            [
                "Wachtwoord vergeten?",
                "Uw wachtwoord moet minimaal 12 tekens bevatten",
                "Het wachtwoord is onjuist",
                "Uw wachtwoord is verlopen. Kies een nieuw wachtwoord.",
                "Wachtwoorden komen niet overeen",
                "Voer uw wachtwoord in",
            ]
        )

    def h26_ui_pt(self) -> str:
        return self.pick(
            [
                "Esqueceu sua senha?",
                "A senha deve ter pelo menos 12 caracteres",
                "Senha incorreta. Tente novamente.",
                "Sua senha expirou. Escolha uma nova senha.",
                "As senhas não coincidem",
                "Digite sua senha",
            ]
        )

    def h26_doc_example(self) -> str:
        return self.pick(
            [
                "AKIAIOSFODNN7EXAMPLE",
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
                "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
                "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
            ]
        )

    def h26_example_uri(self) -> str:
        host = self.pick(
            ["db.example.com", "pacs.example.org", "fhir.example.net", "mq.test", "lis.invalid"]
        )
        user = self.pick(["user", "admin", "fhiruser", "dbuser", "guest"])
        pw = self.pick(["secret", "password", self.pick(self.words) + self.s(2, DIGITS)])
        scheme = self.pick(["postgresql", "https", "amqp", "mysql"])
        return f"{scheme}://{user}:{pw}@{host}/{self.pick(['fhir', 'app', 'hl7', 'r4'])}"

    def h26_fake_test(self) -> str:
        return self.pick(
            [
                "fake-token-for-tests",
                "test-password-not-real",
                "dummy_secret_for_ci",
                "not-a-real-key-" + self.s(6, DIGITS),
                "FAKE_" + self.s(8, UPNUM) + "_TESTONLY",
                "unit-test-only",
                "fixture-" + self.pick(self.words),
            ]
        )

    def h26_pw_policy(self) -> str:
        return self.pick(["12", "14", "16", "20", "24"])


VALUES = Heldout26Values


def _t(path: str, text: str, kind: str, positive: bool) -> evalset.Template:
    return (path, text.lstrip("\n"), kind, positive)


# ---------------------------------------------------------------------- interfaces: HL7, FHIR
TEMPLATES: list[evalset.Template] = [
    _t(
        "interfaces/mirth/conf/mirth.properties",
        r"""
# Mirth Connect 4.4 server configuration -- MHP interface engine, node prod-a
# Managed by the Integration team (int-team@mhp.org). Restart mcservice after changes.
dir.appdata = /opt/mirthconnect/appdata
dir.tempdata = ${dir.appdata}/temp
http.port = 8080
https.port = 8443
http.contextpath = /

password.retrylimit = 5
password.lockoutperiod = 15
password.minlength = 12

keystore.path = ${dir.appdata}/keystore.jks
keystore.storepass = {V}
keystore.keypass = {V2}
keystore.type = JCEKS

database = postgres
database.url = jdbc:postgresql://mirthdb01.mhp.local:5432/mirthdb
database.username = mirth_intf
database.password = {V3}
database.max-connections = 20
database.max-retry = 2
""",
        "h26_pw",
        True,
    ),
    _t(
        "interfaces/mirth/channels/ADT_A08_to_HiX.xml",
        r"""
<channel version="4.4.0">
  <id>3f1c2b9e-7d4a-4e61-9a0b-0c5e2f7b8d11</id>
  <name>ADT_A08_to_HiX</name>
  <description>Forward patient updates from Epic Bridges to Ziekenhuis Hoorndijk (HiX).</description>
  <destinationConnectors>
    <connector version="4.4.0">
      <name>Write audit row</name>
      <properties class="com.mirth.connect.connectors.jdbc.DatabaseDispatcherProperties">
        <driver>org.postgresql.Driver</driver>
        <url>jdbc:postgresql://mirthdb01.mhp.local:5432/intf_audit</url>
        <username>intf_audit</username>
        <password>{V}</password>
        <query>INSERT INTO adt_audit (msg_id, mrn, event, received) VALUES (?, ?, ?, now())</query>
        <useScript>false</useScript>
      </properties>
    </connector>
    <connector version="4.4.0">
      <name>HiX SFTP drop</name>
      <properties class="com.mirth.connect.connectors.file.FileDispatcherProperties">
        <scheme>SFTP</scheme>
        <host>sftp.hoorndijk.nl:22/in/adt</host>
        <username>mhp_adt</username>
        <password>{V2}</password>
        <outputPattern>ADT_${message.messageId}.hl7</outputPattern>
      </properties>
    </connector>
  </destinationConnectors>
</channel>
""",
        "h26_pw",
        True,
    ),
    _t(
        "interfaces/mirth/channels/ORU_results_audit.xml",
        r"""
<channel version="4.4.0">
  <id>a91e0c44-1b57-4c9b-8d0e-6f3a2e9c7b20</id>
  <name>ORU_results_audit</name>
  <destinationConnectors>
    <connector version="4.4.0">
      <name>Audit DB</name>
      <properties class="com.mirth.connect.connectors.jdbc.DatabaseDispatcherProperties">
        <driver>org.postgresql.Driver</driver>
        <url>jdbc:postgresql://mirthdb01.mhp.local:5432/intf_audit</url>
        <username>${cfg_audit_user}</username>
        <password>{V}</password>
        <query>INSERT INTO oru_audit (msg_id, accession) VALUES (?, ?)</query>
      </properties>
    </connector>
  </destinationConnectors>
  <!-- credentials come from the Configuration Map, loaded from Key Vault at deploy -->
</channel>
""",
        "h26_placeholder",
        False,
    ),
    _t(
        "interfaces/fhir/smart-backend/jwks_private.json",
        r"""
{
  "keys": [
    {
      "kty": "EC",
      "crv": "P-256",
      "kid": "mhp-bulk-2024-11",
      "use": "sig",
      "alg": "ES384",
      "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
      "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
      "d": "{V}"
    }
  ]
}
""",
        "h26_jwk_d",
        True,
    ),
    _t(
        "interfaces/fhir/client/fhir_client.py",
        r"""
# Small FHIR R4 client for the discharge-summary exporter (client-credentials grant).
import time

import requests

TOKEN_URL = "https://login.mhp.org/realms/clinical/protocol/openid-connect/token"
FHIR_BASE = "https://fhir.mhp.local/fhir"
CLIENT_ID = "discharge-exporter"
CLIENT_SECRET = "{V}"


class FhirClient:
    def __init__(self) -> None:
        self._token = None
        self._expires = 0.0

    def token(self) -> str:
        if self._token and time.time() < self._expires - 30:
            return self._token
        resp = requests.post(
            TOKEN_URL,
            data={"grant_type": "client_credentials", "scope": "system/DocumentReference.write"},
            auth=(CLIENT_ID, CLIENT_SECRET),
            timeout=10,
        )
        resp.raise_for_status()
        body = resp.json()
        self._token = body["access_token"]
        self._expires = time.time() + body["expires_in"]
        return self._token

    def post(self, resource: dict) -> dict:
        url = f"{FHIR_BASE}/{resource['resourceType']}"
        headers = {"Authorization": f"Bearer {self.token()}", "Content-Type": "application/fhir+json"}
        return requests.post(url, json=resource, headers=headers, timeout=30).json()
""",
        "h26_oauth_secret",
        True,
    ),
    _t(
        "interfaces/mllp-bridge/.env",
        r"""
# MLLP <-> HTTPS bridge for the Kettlebeck lab analysers
MLLP_LISTEN=0.0.0.0:2575
MLLP_ACK_MODE=original
UPSTREAM_URL=https://intf-api.mhp.local/hl7/v2
UPSTREAM_USER=mllp_bridge
UPSTREAM_PASSWORD={V}
TLS_CERT=/etc/mllp/tls/bridge.crt
TLS_KEY=/etc/mllp/tls/bridge.key
LOG_LEVEL=info
""",
        "h26_pw",
        True,
    ),
    _t(
        "interfaces/mllp-bridge/.env.example",
        r"""
# Copy to .env and fill in. Never commit the real file.
MLLP_LISTEN=0.0.0.0:2575
MLLP_ACK_MODE=original
UPSTREAM_URL=https://intf-api.mhp.local/hl7/v2
UPSTREAM_USER=mllp_bridge
UPSTREAM_PASSWORD={V}
TLS_CERT=/etc/mllp/tls/bridge.crt
TLS_KEY=/etc/mllp/tls/bridge.key
""",
        "h26_placeholder",
        False,
    ),
    _t(
        "interfaces/hl7/router/config.toml",
        r"""
# hl7-router: fan-out of ADT/ORM/ORU from the engine to downstream consumers
[server]
listen = "0.0.0.0:6661"
max_message_kb = 512

[broker]
url = "{V}"
exchange = "hl7.v2"
prefetch = 50

[[route]]
match = "ADT^A0*"
queue = "adt.hix"

[[route]]
match = "ORU^R01"
queue = "results.portal"
""",
        "h26_amqp_uri",
        True,
    ),
    _t(
        "interfaces/hl7/samples/ADT_A01_sample.hl7",
        r"""
MSH|^~\&|EPIC|MFG|MIRTH|MHP|20240311084512||ADT^A01^ADT_A01|{V}|P|2.5.1
EVN|A01|20240311084500
PID|1||MFG00000001^^^MFG^MR||TESTPATIENT^ALPHA^^^^^L||19700101|F|||1 TEST ST^^MARROWFIELD^^00000||||||||||||||||||
PV1|1|I|4W^412^A^MFG||||1234^TEST^DOCTOR|||MED||||||||V00001
MSH|^~\&|EPIC|MFG|MIRTH|MHP|20240311084533||ADT^A08^ADT_A01|{V2}|P|2.5.1
EVN|A08|20240311084530
PID|1||MFG00000001^^^MFG^MR||TESTPATIENT^ALPHA^^^^^L||19700101|F
""",
        "h26_hl7_ctrl",
        False,
    ),
    _t(
        "interfaces/fhir/README.md",
        r"""
# FHIR façade

The façade exposes `Patient`, `Encounter`, `Observation` and `DocumentReference` from the
engine as FHIR R4. For local testing against the public sandbox you can use the example
connection string from the HAPI docs:

```
FHIR_UPSTREAM={V}
```

Production credentials are issued per consumer by the Integration team; request them in
ServiceNow (catalog item "FHIR API access").
""",
        "h26_example_uri",
        False,
    ),
    _t(
        "interfaces/rhapsody/NOTES.md",
        r"""
# Rhapsody (legacy, Kettlebeck) -- handover notes

Still running on `rhap-kch01` until the Mirth migration finishes (target: Q3).

* Web console: https://rhap-kch01.kch.mhp.local:3041
* Admin login: `Administrator` / `{V}`
* The lab routes (ORU from the Sysmex middleware) are the only ones still active.
* Do **not** restart during the 07:00 lab run.
""",
        "h26_weak_pw",
        True,
    ),
    _t(
        "interfaces/epic/web.config",
        r"""
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <appSettings>
    <add key="InterconnectBase" value="https://ic.mhp.local/Interconnect-PRD/" />
    <add key="ClientId" value="mhp-referral-bridge" />
  </appSettings>
  <connectionStrings configProtectionProvider="DataProtectionConfigurationProvider">
    <EncryptedData>
      <CipherData>
        <CipherValue>{V}</CipherValue>
      </CipherData>
    </EncryptedData>
  </connectionStrings>
</configuration>
""",
        "h26_dpapi",
        False,
    ),
]

# ---------------------------------------------------------------------- imaging: PACS, DICOM
TEMPLATES += [
    _t(
        "imaging/orthanc/orthanc.json",
        r"""
{
  "Name": "MHP-ORTHANC-RESEARCH",
  "StorageDirectory": "/var/lib/orthanc/db",
  "IndexDirectory": "/var/lib/orthanc/db",
  "DicomAet": "MHPRSRCH",
  "DicomPort": 4242,
  "RemoteAccessAllowed": true,
  "AuthenticationEnabled": true,
  "RegisteredUsers": {
    "orthanc_admin": "{V}",
    "ai_pipeline": "{V2}"
  },
  "DicomModalities": {
    "pacs": ["MFGPACS", "pacs01.mhp.local", 104]
  },
  "DicomWeb": {
    "Enable": true,
    "Root": "/dicom-web/"
  }
}
""",
        "h26_pw",
        True,
    ),
    _t(
        "imaging/orthanc/orthanc.prod.json",
        r"""
{
  "Name": "MHP-ORTHANC-ROUTER",
  "DicomAet": "MHPROUTE",
  "DicomPort": 4242,
  "RemoteAccessAllowed": true,
  "AuthenticationEnabled": true,
  "RegisteredUsers": {
    "orthanc_admin": "{V}",
    "viewer": "{V2}"
  }
}
""",
        "h26_env_brace",
        False,
    ),
    _t(
        "imaging/scripts/stow_to_archive.sh",
        r"""
#!/usr/bin/env bash
# Push a folder of DICOM files to the VNA over DICOMweb STOW-RS.
set -euo pipefail

STUDY_DIR="${1:?usage: stow_to_archive.sh <dir>}"
STOW_URL="https://vna.mhp.local/dcm4chee-arc/aets/MHPVNA/rs/studies"

for f in "$STUDY_DIR"/*.dcm; do
  curl -sS --fail -X POST "$STOW_URL" \
    -H "Authorization: Basic {V}" \
    -H "Content-Type: multipart/related; type=\"application/dicom\"; boundary=DICOMwebBoundary" \
    --data-binary @<(printf -- '--DICOMwebBoundary\r\nContent-Type: application/dicom\r\n\r\n'; cat "$f"; printf -- '\r\n--DICOMwebBoundary--\r\n')
done
""",
        "h26_basic",
        True,
    ),
    _t(
        "imaging/scripts/qido_worklist.py",
        r"""
# Quick QIDO-RS query used while chasing the missing-priors issue (INC0045561).
import requests

QIDO = "https://vna.mhp.local/dcm4chee-arc/aets/MHPVNA/rs/studies"
# token copied from the browser session, valid for an hour
TOKEN = "{V}"

params = {"PatientID": "MFG00000001", "ModalitiesInStudy": "CT", "includefield": "all"}
resp = requests.get(QIDO, params=params, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=20)
for study in resp.json():
    print(study["0020000D"]["Value"][0], study.get("00081030", {}).get("Value"))
""",
        "h26_jwt",
        True,
    ),
    _t(
        "imaging/migration/study_manifest.csv",
        r"""
study_instance_uid,series_count,modality,source_ae,status
{V},4,CT,MFGPACS,migrated
{V2},2,MR,MFGPACS,migrated
{V3},1,CR,SOCPACS,pending
{V4},6,CT,MFGPACS,failed_checksum
""",
        "h26_dicom_uid",
        False,
    ),
    _t(
        "imaging/migration/verify_report.txt",
        r"""
VNA migration -- checksum verification, batch 0142
object                                   sha256
1.2.840.113619.2.55.3/0001.dcm           {V}
1.2.840.113619.2.55.3/0002.dcm           {V2}
1.2.840.113619.2.55.3/0003.dcm           {V3}
result: 3/3 verified, 0 mismatches
""",
        "h26_digest",
        False,
    ),
    _t(
        "imaging/archive/appsettings.Production.json",
        r"""
{
  "Logging": { "LogLevel": { "Default": "Information" } },
  "ColdArchive": {
    "ConnectionString": "{V}",
    "Container": "dicom-cold",
    "MoveAfterDays": 730
  },
  "Pacs": {
    "CalledAe": "MFGPACS",
    "CallingAe": "MHPCOLD",
    "Host": "pacs01.mhp.local",
    "Port": 104
  }
}
""",
        "h26_azure_storage_conn",
        True,
    ),
    _t(
        "imaging/vna/send_priors.bat",
        r"""
@echo off
REM Send priors to the reading room workstation with TLS (dcm4che storescu 5.x)
set DCM4CHE=C:\tools\dcm4che-5.31.2\bin
set SRC=%1

"%DCM4CHE%\storescu.bat" -c MFGREAD01@read01.mhp.local:2762 ^
  --tls12 ^
  --key-store C:\certs\mhp-storescu.p12 --key-store-pass {V} ^
  --trust-store C:\certs\mhp-trust.p12 --trust-store-pass {V2} ^
  %SRC%
""",
        "h26_pw",
        True,
    ),
    _t(
        "imaging/teleradiology/push_to_saotadeu.sh",
        r"""
#!/bin/sh
# Night-time push of anonymised CT studies to Hospital São Tadeu for reporting.
set -eu
KEY=$(mktemp)
trap 'rm -f "$KEY"' EXIT
cat > "$KEY" <<'EOF'
{V}
EOF
chmod 600 "$KEY"
rsync -az -e "ssh -i $KEY -o StrictHostKeyChecking=accept-new" \
  /srv/teleradio/outbox/ telerad@sftp.saotadeu.com.br:/entrada/mhp/
""",
        "h26_openssh",
        True,
    ),
    _t(
        "imaging/modality/worklist_mapping.md",
        r"""
# Modality worklist -- accession mapping check (CT2, Marrowfield General)

| Accession       | Scheduled step | AE       | Result              |
|-----------------|----------------|----------|---------------------|
| {V}  | CT ABD/PEL     | MFGCT2   | matched             |
| {V2}  | CT HEAD        | MFGCT2   | matched             |
| {V3}  | CTA CHEST      | MFGCT2   | duplicate, merged   |
""",
        "h26_clinical_id",
        False,
    ),
]

# ---------------------------------------------------------------------- lab systems
TEMPLATES += [
    _t(
        "lab/db/migrations/V42__export_user.sql",
        r"""
-- V42: read-only account for the nightly LIS export to the research platform
CREATE ROLE lis_export WITH LOGIN PASSWORD '{V}';
GRANT CONNECT ON DATABASE lims TO lis_export;
GRANT USAGE ON SCHEMA results TO lis_export;
GRANT SELECT ON ALL TABLES IN SCHEMA results TO lis_export;
ALTER DEFAULT PRIVILEGES IN SCHEMA results GRANT SELECT ON TABLES TO lis_export;
""",
        "h26_pw",
        True,
    ),
    _t(
        "lab/legacy/hl7_results.pl",
        r"""
#!/usr/bin/perl
# Legacy ORU poller (Kettlebeck). Replaced by Mirth channel ORU_KCH in 2025.
use strict;
use warnings;
use DBI;

my $dsn  = "DBI:Oracle:host=lisdb-scan.mhp.local;sid=LISPROD;port=1521";
my $user = "LIS_RPT";
my $pass = "{V}";

my $dbh = DBI->connect($dsn, $user, $pass, { RaiseError => 1, AutoCommit => 0 })
    or die "cannot connect: $DBI::errstr";
my $sth = $dbh->prepare("SELECT accession, test_code, result FROM results WHERE status = 'F'");
$sth->execute();
while (my @row = $sth->fetchrow_array) {
    print join("|", @row), "\n";
}
$dbh->disconnect;
""",
        "h26_pw",
        True,
    ),
    _t(
        "lab/lis-client/src/main/java/org/mhp/lis/LisClient.java",
        r"""
package org.mhp.lis;

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;

public final class LisClient {
    // TODO(INT-881): move to the connection pool config
    private static final String URL = "{V}";

    private LisClient() {}

    public static Connection open() throws SQLException {
        return DriverManager.getConnection(URL);
    }
}
""",
        "h26_jdbc_oracle",
        True,
    ),
    _t(
        "lab/lis-client/src/main/java/org/mhp/lis/LisPool.java",
        r"""
package org.mhp.lis;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;

public final class LisPool {
    public static HikariDataSource create() {
        HikariConfig cfg = new HikariConfig();
        cfg.setJdbcUrl("jdbc:oracle:thin:@//lisdb-scan.mhp.local:1521/LISPROD");
        cfg.setUsername("LIS_APP");
        cfg.setPassword({V});
        cfg.setMaximumPoolSize(8);
        return new HikariDataSource(cfg);
    }
}
""",
        "h26_jvm_ref",
        False,
    ),
    _t(
        "lab/middleware/users_export.csv",
        r"""
login,display_name,role,password_hash,last_login
tech01,Core Lab Tech 01,technologist,{V},2024-10-02T06:51:10Z
tech02,Core Lab Tech 02,technologist,{V2},2024-10-02T07:03:44Z
supervisor,Lab Supervisor,supervisor,{V3},2024-09-30T16:20:02Z
""",
        "h26_pw_hash",
        False,
    ),
    _t(
        "lab/Dockerfile",
        r"""
FROM eclipse-temurin:21-jre-jammy@sha256:{V}
WORKDIR /app
COPY target/lis-client.jar /app/lis-client.jar
USER 10001
ENTRYPOINT ["java", "-jar", "/app/lis-client.jar"]
""",
        "h26_digest",
        False,
    ),
    _t(
        "lab/docs/handleiding-koppeling-labsysteem.md",
        r"""
# Handleiding: koppeling labsysteem Hoorndijk

Deze koppeling stuurt uitslagen van het lab in Hoorndijk naar het MHP-portaal.

1. Open het configuratiebestand `lab-koppeling.ini` op de koppelserver.
2. Vul bij `wachtwoord` het wachtwoord van het koppelaccount in, bijvoorbeeld:

       gebruiker = lab_hoorndijk
       wachtwoord = {V}

3. Het echte wachtwoord staat in de kluis (Keeper, map "Integratie NL").
4. Herstart de service `LabKoppeling` en controleer het logbestand.
""",
        "h26_placeholder_nl",
        False,
    ),
    _t(
        "lab/lis-client/src/main/resources/application-prod.properties",
        r"""
# LIS client, production profile. Values are Jasypt-encrypted; the encryptor password is
# injected by the service unit (JASYPT_ENCRYPTOR_PASSWORD), never stored in the repo.
spring.datasource.url=jdbc:oracle:thin:@//lisdb-scan.mhp.local:1521/LISPROD
spring.datasource.username=LIS_APP
spring.datasource.password={V}
lis.results.api.client-secret={V2}
jasypt.encryptor.algorithm=PBEWITHHMACSHA512ANDAES_256
jasypt.encryptor.iv-generator-classname=org.jasypt.iv.RandomIvGenerator
""",
        "h26_jasypt",
        False,
    ),
]

# ---------------------------------------------------------------------- pharmacy
TEMPLATES += [
    _t(
        "pharmacy/eprescribe/eprescribe/settings/production.py",
        r"""
from .base import *  # noqa: F403

DEBUG = False
ALLOWED_HOSTS = ["erx.mhp.org", "erx.mhp.local"]
SECRET_KEY = "{V}"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "eprescribe",
        "HOST": "rxdb01.kch.mhp.local",
        "USER": "erx_app",
        "PASSWORD": os.environ["ERX_DB_PASSWORD"],  # noqa: F405
    }
}
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
""",
        "h26_session_key",
        True,
    ),
    _t(
        "pharmacy/formulary-sync/appsettings.json",
        r"""
{
  "ConnectionStrings": {
    "Formulary": "{V}"
  },
  "Sync": {
    "Source": "https://dmd-feed.mhp.local/weekly",
    "Schedule": "0 3 * * 1",
    "DryRun": false
  }
}
""",
        "h26_mssql_conn",
        True,
    ),
    _t(
        "pharmacy/cabinets/Sync-CabinetUsers.ps1",
        r"""
<#
.SYNOPSIS
  Nightly sync of pharmacy staff from AD group GG-Pharmacy-Cabinet to the cabinet server.
#>
param([string]$Server = "cabsrv01.mhp.local")

$user = "MHP\svc_cabsync"
$securePw = ConvertTo-SecureString "{V}" -AsPlainText -Force
$cred = New-Object System.Management.Automation.PSCredential ($user, $securePw)

$members = Get-ADGroupMember -Identity "GG-Pharmacy-Cabinet" -Recursive |
    Get-ADUser -Properties employeeID, mail
Invoke-Command -ComputerName $Server -Credential $cred -ScriptBlock {
    param($m) & "C:\Program Files\CabinetServer\bin\userimport.exe" --json ($m | ConvertTo-Json)
} -ArgumentList (,$members)
""",
        "h26_pw",
        True,
    ),
    _t(
        "pharmacy/cabinets/Sync-CabinetUsers.prod.ps1",
        r"""
param([string]$Server = "cabsrv01.mhp.local")

$user = "MHP\svc_cabsync"
$plain = {V}
$securePw = ConvertTo-SecureString $plain -AsPlainText -Force
$cred = New-Object System.Management.Automation.PSCredential ($user, $securePw)
Invoke-Command -ComputerName $Server -Credential $cred -FilePath .\Import-Users.ps1
""",
        "h26_ps_ref",
        False,
    ),
    _t(
        "pharmacy/cabinets/CabinetClient.cs",
        r"""
using Microsoft.Data.SqlClient;

namespace Mhp.Pharmacy.Cabinets;

public sealed class CabinetClient
{
    private readonly string _connectionString;

    public CabinetClient(IConfiguration configuration)
    {
        var builder = new SqlConnectionStringBuilder
        {
            DataSource = "sql-rx01.mhp.local",
            InitialCatalog = "CabinetServer",
            UserID = "cab_intf",
            Password = {V},
            Encrypt = true,
        };
        _connectionString = builder.ConnectionString;
    }
}
""",
        "h26_cs_ref",
        False,
    ),
    _t(
        "pharmacy/robot/robot.conf",
        r"""
# Pharmacy packing robot (outpatient pharmacy, Kettlebeck) -- vendor commissioning defaults
[service]
web_ui = https://rxrobot-kch.kch.mhp.local
admin_user = admin
admin_password = {V}

[interface]
hl7_port = 6100
dispense_queue = KCH-OP
""",
        "h26_vendor_default",
        True,
    ),
]

# ---------------------------------------------------------------------- patient portal and mobile app
TEMPLATES += [
    _t(
        "portal/api/.env",
        r"""
NODE_ENV=production
PORT=8080
DATABASE_URL={V}
SESSION_TTL_MINUTES=30
FHIR_BASE_URL=https://fhir.mhp.local/fhir
PORTAL_ORIGIN=https://my.marrowfieldhealth.org
""",
        "h26_pg_uri",
        True,
    ),
    _t(
        "portal/api/.env.production",
        r"""
# Payments (copays and parking permits)
STRIPE_SECRET_KEY={V}
STRIPE_API_VERSION=2024-06-20
STRIPE_STATEMENT_DESCRIPTOR=MARROWFIELD HEALTH
""",
        "h26_stripe_live",
        True,
    ),
    _t(
        "portal/api/src/config/mail.ts",
        r"""
import sgMail from '@sendgrid/mail';

// appointment reminders and results-ready notifications
sgMail.setApiKey('{V}');

export const FROM = { email: 'no-reply@marrowfieldhealth.org', name: 'MyMarrowfield' };
export const TEMPLATES = {
  resultsReady: 'd-4f1a9c0e2b7d4c55a1e3f9b8c7d6e5f4',
  appointmentReminder: 'd-0a1b2c3d4e5f40718293a4b5c6d7e8f9',
};
export default sgMail;
""",
        "h26_sendgrid",
        True,
    ),
    _t(
        "portal/api/src/sms/twilio.js",
        r"""
const twilio = require('twilio');

const accountSid = process.env.TWILIO_ACCOUNT_SID;
const authToken = '{V}';
const client = twilio(accountSid, authToken);

async function sendReminder(to, when) {
  return client.messages.create({
    from: '+441632960500',
    to,
    body: `MyMarrowfield: reminder of your appointment on ${when}. Reply STOP to opt out.`,
  });
}

module.exports = { sendReminder };
""",
        "h26_twilio_token",
        True,
    ),
    _t(
        "portal/api/src/payments/stripe.ts",
        r"""
import Stripe from 'stripe';

const key = {V};
export const stripe = new Stripe(key, { apiVersion: '2024-06-20', maxNetworkRetries: 2 });
""",
        "h26_js_ref",
        False,
    ),
    _t(
        "portal/web/src/environments/environment.prod.ts",
        r"""
export const environment = {
  production: true,
  apiBase: 'https://my.marrowfieldhealth.org/api',
  stripePublishableKey: '{V}',
  featureFlags: { videoVisits: true, proxyAccess: true },
};
""",
        "h26_publishable",
        False,
    ),
    _t(
        "portal/mobile/android/app/google-services.json",
        r"""
{
  "project_info": {
    "project_number": "402117788301",
    "project_id": "mymarrowfield-prod",
    "storage_bucket": "mymarrowfield-prod.appspot.com"
  },
  "client": [
    {
      "client_info": {
        "mobilesdk_app_id": "{V}",
        "android_client_info": { "package_name": "org.marrowfieldhealth.portal" }
      },
      "oauth_client": []
    },
    {
      "client_info": {
        "mobilesdk_app_id": "{V2}",
        "android_client_info": { "package_name": "org.marrowfieldhealth.portal.staging" }
      },
      "oauth_client": []
    }
  ],
  "configuration_version": "1"
}
""",
        "h26_mobile_id",
        False,
    ),
    _t(
        "portal/mobile/android/keystore.properties",
        r"""
storeFile=../keys/mymarrowfield-release.jks
storePassword={V}
keyAlias=mymarrowfield
keyPassword={V2}
""",
        "h26_pw",
        True,
    ),
    _t(
        "portal/mobile/ios/fastlane/Fastfile",
        r"""
default_platform(:ios)

platform :ios do
  desc "Upload a beta build to TestFlight"
  lane :beta do
    api_key = app_store_connect_api_key(
      key_id: "7QX2M4K9PL",
      issuer_id: "69a6de7e-3c12-47e3-e053-5b8c7c11a4d1",
      key_content: <<~KEY,
        {IV}
      KEY
      in_house: false
    )
    build_app(scheme: "MyMarrowfield")
    upload_to_testflight(api_key: api_key, skip_waiting_for_build_processing: true)
  end
end
""",
        "h26_apns_p8",
        True,
    ),
    _t(
        "portal/mobile/ios/Config/Secrets.xcconfig",
        r"""
// Secrets for the clinic finder map -- do not commit (see INC0046610)
GOOGLE_MAPS_API_KEY = {V}
PORTAL_API_HOST = my.marrowfieldhealth.org
""",
        "h26_google_key",
        True,
    ),
    _t(
        "portal/mobile/ios/MyMarrowfield/AppConfig.swift",
        r"""
import Foundation

enum AppConfig {
    static let apiBase = URL(string: "https://my.marrowfieldhealth.org/api")!
    static let oidcIssuer = URL(string: "https://login.mhp.org/realms/patients")!
    static let oidcClientId = "mymarrowfield-ios"
    // confidential client: the token endpoint rejects requests without it
    static let oidcClientSecret = "{V}"
    static let redirectUri = "org.marrowfieldhealth.portal:/oauth2redirect"
}
""",
        "h26_oauth_secret",
        True,
    ),
    _t(
        "portal/mobile/android/app/src/main/java/org/marrowfieldhealth/portal/ApiConfig.kt",
        r"""
package org.marrowfieldhealth.portal

object ApiConfig {
    const val BASE_URL = "https://my.marrowfieldhealth.org/api/"
    val apiKey: String get() = {V}
    const val TIMEOUT_SECONDS = 20L
}
""",
        "h26_jvm_ref",
        False,
    ),
    _t(
        "portal/push/fcm_sender.py",
        r"""
import requests

FCM_URL = "https://fcm.googleapis.com/fcm/send"
SERVER_KEY = "{V}"


def notify(device_token: str, title: str, body: str) -> None:
    requests.post(
        FCM_URL,
        headers={"Authorization": f"key={SERVER_KEY}", "Content-Type": "application/json"},
        json={"to": device_token, "notification": {"title": title, "body": body}},
        timeout=10,
    ).raise_for_status()
""",
        "h26_fcm_key",
        True,
    ),
    _t(
        "portal/api/src/auth/tokens.ts",
        r"""
import jwt from 'jsonwebtoken';

const SIGNING_SECRET = '{V}';
const ISSUER = 'https://my.marrowfieldhealth.org';

export function issueSessionToken(patientId: string, proxyFor?: string) {
  return jwt.sign({ sub: patientId, proxy: proxyFor ?? null }, SIGNING_SECRET, {
    algorithm: 'HS256',
    issuer: ISSUER,
    expiresIn: '30m',
  });
}

export function verifySessionToken(token: string) {
  return jwt.verify(token, SIGNING_SECRET, { issuer: ISSUER });
}
""",
        "h26_jwt_secret",
        True,
    ),
    _t(
        "portal/api/test/auth.spec.ts",
        r"""
import { describe, expect, it, vi } from 'vitest';

vi.stubEnv('PORTAL_JWT_SECRET', '{V}');

describe('session tokens', () => {
  it('round-trips a patient id', async () => {
    const { issueSessionToken, verifySessionToken } = await import('../src/auth/tokens');
    const token = issueSessionToken('pat-0001');
    expect(verifySessionToken(token)).toMatchObject({ sub: 'pat-0001' });
  });

  it('rejects a wrong password on login', async () => {
    const res = await login('test.patient@example.com', '{V2}');
    expect(res.status).toBe(401);
  });
});
""",
        "h26_fake_test",
        False,
    ),
    _t(
        "portal/web/src/i18n/nl.json",
        r"""
{
  "login.title": "Inloggen bij MijnMarrowfield",
  "login.password": "Wachtwoord",
  "login.forgot": "{V}",
  "login.error": "{V2}",
  "register.passwordHint": "{V3}"
}
""",
        "h26_ui_nl",
        False,
    ),
    _t(
        "portal/web/src/i18n/pt-BR.json",
        r"""
{
  "login.title": "Entrar no MyMarrowfield",
  "login.password": "Senha",
  "login.forgot": "{V}",
  "login.error": "{V2}",
  "profile.changePassword": "Alterar senha"
}
""",
        "h26_ui_pt",
        False,
    ),
    _t(
        "portal/web/.sentryclirc",
        r"""
[defaults]
url = https://sentry.io/
org = marrowfield-health
project = mymarrowfield-web

[auth]
token = {V}
""",
        "h26_sentry_token",
        True,
    ),
    _t(
        "portal/mobile/.env.example",
        r"""
# Copy to .env.local -- never commit real values
API_BASE_URL=https://my-staging.marrowfieldhealth.org/api
GOOGLE_MAPS_API_KEY={V}
SENTRY_AUTH_TOKEN={V2}
OIDC_CLIENT_SECRET={V3}
""",
        "h26_placeholder",
        False,
    ),
    _t(
        "portal/api/docker-compose.yml",
        r"""
services:
  api:
    build: .
    env_file: .env
    environment:
      REDIS_URL: "{V}"
      QUEUE_PREFIX: portal
    ports:
      - "8080:8080"
  worker:
    build: .
    command: ["node", "dist/worker.js"]
    environment:
      REDIS_URL: "{V}"
""",
        "h26_redis_uri",
        True,
    ),
    _t(
        "portal/web/src/auth/oidc.ts",
        r"""
import { PublicClientApplication } from '@azure/msal-browser';

// Staff console sign-in (Entra ID). Tenant and client ids are not secrets.
export const msal = new PublicClientApplication({
  auth: {
    clientId: '{V}',
    authority: 'https://login.microsoftonline.com/{V2}',
    redirectUri: 'https://my.marrowfieldhealth.org/staff/callback',
  },
  cache: { cacheLocation: 'sessionStorage' },
});
""",
        "h26_guid",
        False,
    ),
    _t(
        "portal/web/src/clinic-finder/map.ts",
        r"""
import mapboxgl from 'mapbox-gl';

// Public (pk.) token, URL-restricted to my.marrowfieldhealth.org in the Mapbox account.
mapboxgl.accessToken = '{V}';

export function renderClinicMap(el: HTMLElement, clinics: Array<{ lat: number; lon: number }>) {
  const map = new mapboxgl.Map({ container: el, style: 'mapbox://styles/mapbox/streets-v12', zoom: 9 });
  clinics.forEach((c) => new mapboxgl.Marker().setLngLat([c.lon, c.lat]).addTo(map));
  return map;
}
""",
        "h26_mapbox_pk",
        False,
    ),
]

# ---------------------------------------------------------------------- medical-device integration
TEMPLATES += [
    _t(
        "devices/gateway/mosquitto/passwd",
        r"""
vitals-gw-01:{V}
vitals-gw-02:{V2}
pump-gw:{V3}
telemetry-ro:{V4}
""",
        "h26_mosq_hash",
        False,
    ),
    _t(
        "devices/vitals/collector.c",
        r"""
/* Bedside vitals collector: reads the monitor serial feed and publishes over MQTT. */
#include <stdio.h>
#include <string.h>
#include <MQTTClient.h>

#define BROKER_URI   "ssl://devbroker.mhp.local:8883"
#define CLIENT_ID    "vitals-bed-4w12"
#define MQTT_USER    "vitals-gw-01"
#define MQTT_PASS    "{V}"

int connect_broker(MQTTClient *client)
{
    MQTTClient_connectOptions opts = MQTTClient_connectOptions_initializer;
    MQTTClient_SSLOptions ssl = MQTTClient_SSLOptions_initializer;
    ssl.trustStore = "/etc/vitals/mhp-root-ca.pem";
    opts.ssl = &ssl;
    opts.username = MQTT_USER;
    opts.password = MQTT_PASS;
    opts.keepAliveInterval = 20;
    MQTTClient_create(client, BROKER_URI, CLIENT_ID, MQTTCLIENT_PERSISTENCE_NONE, NULL);
    return MQTTClient_connect(*client, &opts);
}
""",
        "h26_pw",
        True,
    ),
    _t(
        "devices/vitals/src/main.rs",
        r"""
use rumqttc::{Client, MqttOptions, QoS};
use std::time::Duration;

fn main() {
    let mut opts = MqttOptions::new("vitals-icu-gw", "devbroker.mhp.local", 8883);
    opts.set_keep_alive(Duration::from_secs(15));
    opts.set_credentials("vitals-gw-02", "{V}");
    let (client, mut connection) = Client::new(opts, 64);
    client.subscribe("icu/+/vitals", QoS::AtLeastOnce).unwrap();
    for event in connection.iter() {
        println!("{:?}", event);
    }
}
""",
        "h26_pw",
        True,
    ),
    _t(
        "devices/inventory/biomed_assets.csv",
        r"""
asset_tag,description,location,udi_or_serial,mac
BME-00412,Infusion pump (large volume),4W,{V},-
BME-00413,Infusion pump (large volume),4W,{V2},-
BME-01120,Patient monitor,ICU bed 3,{V3},{V4}
""",
        "h26_device_id",
        False,
    ),
    _t(
        "devices/gateway/certs/README.md",
        r"""
# Device gateway certificates

The ward gateways trust only the MHP device root. Its certificate (public, safe to share):

```
{V}
```

Gateway private keys are generated on the device (TPM) and never leave it.
""",
        "h26_cert",
        False,
    ),
    _t(
        "devices/iot/iot_device.py",
        r"""
# Azure IoT Hub device client for the ventilator telemetry bridge (ICU, Marrowfield General)
from azure.iot.device import IoTHubDeviceClient, Message

CONNECTION_STRING = "{V}"

client = IoTHubDeviceClient.create_from_connection_string(CONNECTION_STRING)
client.connect()


def publish(reading: dict) -> None:
    msg = Message(str(reading))
    msg.content_type = "application/json"
    client.send_message(msg)
""",
        "h26_azure_iot_conn",
        True,
    ),
    _t(
        "devices/gateway/wireguard/wg0.conf",
        r"""
[Interface]
# Ward gateway 4W -> device DMZ
Address = 10.87.4.12/32
PrivateKey = {V}
ListenPort = 51820
DNS = 10.87.0.53

[Peer]
# device-dmz concentrator; its public key is in NetBox (device "wg-dmz01")
Endpoint = wg-dmz01.mhp.local:51820
AllowedIPs = 10.87.0.0/16
PersistentKeepalive = 25
""",
        "h26_wg_private",
        True,
    ),
    _t(
        "devices/gateway/wireguard/peers.conf",
        r"""
# Peers of wg-dmz01 (public keys only)
[Peer]
# ward-4w-gw
PublicKey = {V}
AllowedIPs = 10.87.4.12/32

[Peer]
# icu-gw
PublicKey = {V2}
AllowedIPs = 10.87.6.10/32
""",
        "h26_wg_public",
        False,
    ),
    _t(
        "devices/gateway/go.sum",
        r"""
github.com/eclipse/paho.mqtt.golang v1.4.3 {V}
github.com/eclipse/paho.mqtt.golang v1.4.3/go.mod {V2}
github.com/gorilla/websocket v1.5.1 {V3}
golang.org/x/net v0.27.0 {V4}
""",
        "h26_gosum",
        False,
    ),
    _t(
        "devices/gateway/main.go",
        r"""
package main

import (
	"log"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

func main() {
	opts := mqtt.NewClientOptions().
		AddBroker("ssl://devbroker.mhp.local:8883").
		SetClientID("pump-gw").
		SetUsername("pump-gw").
		SetPassword("{V}").
		SetKeepAlive(20 * time.Second)
	client := mqtt.NewClient(opts)
	if tok := client.Connect(); tok.Wait() && tok.Error() != nil {
		log.Fatal(tok.Error())
	}
	select {}
}
""",
        "h26_pw",
        True,
    ),
]

# ---------------------------------------------------------------------- research data platform
TEMPLATES += [
    _t(
        "research/notebooks/cohort_extract.ipynb",
        r"""
{
 "cells": [
  {
   "cell_type": "markdown",
   "metadata": {},
   "source": ["# Sepsis cohort extract (OMOP CDM v5.4)\n", "Study MHP-RES-2024-017, IRB approved."]
  },
  {
   "cell_type": "code",
   "execution_count": 3,
   "metadata": {},
   "outputs": [],
   "source": [
    "import pandas as pd\n",
    "from sqlalchemy import create_engine\n",
    "\n",
    "engine = create_engine('{V}')\n",
    "cohort = pd.read_sql('SELECT person_id, condition_start_date FROM cdm.condition_occurrence WHERE condition_concept_id = 132797', engine)\n",
    "cohort.shape"
   ]
  }
 ],
 "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
        "h26_pg_uri",
        True,
    ),
    _t(
        "research/notebooks/redcap_pull.ipynb",
        r"""
{
 "cells": [
  {
   "cell_type": "code",
   "execution_count": 1,
   "metadata": {},
   "outputs": [],
   "source": [
    "import requests\n",
    "\n",
    "REDCAP_URL = 'https://redcap.mhp.org/api/'\n",
    "TOKEN = '{V}'  # project 412 (paediatric asthma registry)\n",
    "payload = {'token': TOKEN, 'content': 'record', 'format': 'json', 'type': 'flat'}\n",
    "records = requests.post(REDCAP_URL, data=payload, timeout=60).json()\n",
    "len(records)"
   ]
  },
  {
   "cell_type": "code",
   "execution_count": 2,
   "metadata": {},
   "outputs": [{"name": "stdout", "output_type": "stream", "text": ["1287\n"]}],
   "source": ["print(len(records))"]
  }
 ],
 "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
        "h26_redcap_token",
        True,
    ),
    _t(
        "research/notebooks/notes_summarise.ipynb",
        r"""
{
 "cells": [
  {
   "cell_type": "code",
   "execution_count": 4,
   "metadata": {},
   "outputs": [],
   "source": [
    "from openai import OpenAI\n",
    "\n",
    "client = OpenAI(api_key='{V}')\n",
    "resp = client.chat.completions.create(model='gpt-4o-mini', messages=[{'role': 'user', 'content': synthetic_note}])\n",
    "print(resp.choices[0].message.content)"
   ]
  }
 ],
 "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
        "h26_openai",
        True,
    ),
    _t(
        "research/notebooks/omop_qc.ipynb",
        r"""
{
 "cells": [
  {
   "cell_type": "code",
   "execution_count": 2,
   "metadata": {},
   "outputs": [],
   "source": [
    "import os\n",
    "import psycopg\n",
    "\n",
    "password = {V}\n",
    "conn = psycopg.connect(host='omop-pg02.research.mhp.local', dbname='omop_cdm', user='research_etl', password=password)\n",
    "conn.execute('SELECT count(*) FROM cdm.person').fetchone()"
   ]
  }
 ],
 "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
        "h26_py_ref",
        False,
    ),
    _t(
        "research/jupyter/jupyter_server_config.py",
        r"""
# Single-user server on the GPU workstation (rdp-gpu01); password login, no token.
c = get_config()  # noqa: F821
c.ServerApp.ip = "0.0.0.0"
c.ServerApp.port = 8888
c.ServerApp.open_browser = False
c.PasswordIdentityProvider.hashed_password = "{V}"
c.ServerApp.certfile = "/etc/jupyter/tls/rdp-gpu01.crt"
c.ServerApp.keyfile = "/etc/jupyter/tls/rdp-gpu01.key"
""",
        "h26_jupyter_hash",
        False,
    ),
    _t(
        "research/jupyter/start-notebook.sh",
        r"""
#!/usr/bin/env bash
# Start a notebook on the shared analysis VM for the sepsis study team.
source /opt/conda/bin/activate rdp-2024
exec jupyter lab --no-browser --ip=0.0.0.0 --port=8890 \
  --ServerApp.token={V} \
  --ServerApp.root_dir=/data/studies/MHP-RES-2024-017
""",
        "h26_jupyter_token",
        True,
    ),
    _t(
        "research/databricks/.databrickscfg",
        r"""
[DEFAULT]
host = https://adb-5829113307741265.5.azuredatabricks.net
token = {V}

[staging]
host = https://adb-7712940013352809.9.azuredatabricks.net
token = {V2}
""",
        "h26_databricks",
        True,
    ),
    _t(
        "research/R/extract_cohort.R",
        r"""
library(DBI)
library(RPostgres)

con <- dbConnect(
  RPostgres::Postgres(),
  host = "omop-pg02.research.mhp.local",
  dbname = "omop_cdm",
  user = "research_etl",
  password = "{V}"
)

asthma <- dbGetQuery(con, "
  SELECT person_id, MIN(condition_start_date) AS first_dx
  FROM cdm.condition_occurrence
  WHERE condition_concept_id IN (317009)
  GROUP BY person_id")
saveRDS(asthma, "output/asthma_cohort.rds")
dbDisconnect(con)
""",
        "h26_pw",
        True,
    ),
    _t(
        "research/pseudo/config.yaml",
        r"""
# Pseudonymisation service for research extracts (keyed hashing of MRNs)
algorithm: HMAC-SHA256
key_id: pseudo-2024-q4
key: "{V}"
output_prefix: ""
fields:
  - mrn
  - nhs_number
  - encounter_id
date_shift_days: random_per_patient
""",
        "h26_hmac_key",
        True,
    ),
    _t(
        "research/pseudo/sample_output.csv",
        r"""
patient_key,age_band,sex,first_admission_month,los_days
{V},40-49,F,2023-02,4
{V2},70-79,M,2023-05,11
{V3},0-9,F,2023-07,2
""",
        "h26_pseudo_id",
        False,
    ),
    _t(
        "research/hf/download_models.sh",
        r"""
#!/usr/bin/env bash
# Mirror the approved clinical NLP models into the air-gapped model store.
set -euo pipefail
export HF_TOKEN={V}
for repo in emilyalsentzer/Bio_ClinicalBERT microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract; do
  huggingface-cli download "$repo" --local-dir "/models/${repo//\//__}"
done
""",
        "h26_hf",
        True,
    ),
    _t(
        "research/dbt/profiles.yml",
        r"""
rdp:
  target: prod
  outputs:
    prod:
      type: snowflake
      account: mhp-research.west-europe.azure
      user: DBT_SVC
      password: "{V}"
      role: TRANSFORMER
      database: RDP
      warehouse: TRANSFORM_WH
      schema: marts
      threads: 8
""",
        "h26_pw",
        True,
    ),
    _t(
        "research/dbt/profiles.ci.yml",
        r"""
rdp:
  target: ci
  outputs:
    ci:
      type: snowflake
      account: mhp-research.west-europe.azure
      user: DBT_CI
      password: "{{ env_var('DBT_SNOWFLAKE_PASSWORD') }}"
      authenticator: snowflake
      private_key_passphrase: "{V}"
      role: TRANSFORMER_CI
      database: RDP_CI
      warehouse: CI_WH
      schema: "ci_{{ env_var('GITHUB_RUN_ID') }}"
""",
        "h26_placeholder",
        False,
    ),
    _t(
        "research/nlp/summarise.py",
        r"""
import anthropic

client = anthropic.Anthropic(api_key="{V}")


def summarise(note: str) -> str:
    # synthetic notes only -- real notes go through the approved on-prem model
    msg = client.messages.create(
        model="claude-3-5-sonnet-latest",
        max_tokens=512,
        messages=[{"role": "user", "content": f"Summarise this discharge note:\n{note}"}],
    )
    return msg.content[0].text
""",
        "h26_anthropic",
        True,
    ),
    _t(
        "research/spark/OmopLoad.scala",
        r"""
package org.mhp.rdp

import org.apache.spark.sql.SparkSession

object OmopLoad {
  def main(args: Array[String]): Unit = {
    val spark = SparkSession.builder.appName("omop-load").getOrCreate()
    val visits = spark.read
      .format("jdbc")
      .option("url", "jdbc:postgresql://omop-pg02.research.mhp.local:5432/omop_cdm")
      .option("dbtable", "cdm.visit_occurrence")
      .option("user", "research_etl")
      .option("password", "{V}")
      .load()
    visits.write.mode("overwrite").parquet("abfss://rdp@stmhpresearchraw.dfs.core.windows.net/omop/visits")
  }
}
""",
        "h26_pw",
        True,
    ),
    _t(
        "research/docs/LEESMIJ.md",
        r"""
# Research Data Platform -- snelstart (Hoorndijk)

1. Vraag toegang aan via de servicedesk (formulier "RDP-toegang").
2. Maak een bestand `~/.rdp.env` met:

   ```
   OMOP_USER=jouw.gebruikersnaam
   OMOP_PASSWORD={V}
   ```

3. Het wachtwoord krijg je via een eenmalige link; zet het nooit in een notebook.
""",
        "h26_placeholder_nl",
        False,
    ),
]

# ---------------------------------------------------------------------- identity and Active Directory
TEMPLATES += [
    _t(
        "identity/linux/sssd.conf",
        r"""
[sssd]
services = nss, pam, sudo
domains = mhp.local

[domain/mhp.local]
id_provider = ldap
auth_provider = ldap
ldap_uri = ldaps://dc01.mhp.local, ldaps://dc02.mhp.local
ldap_search_base = dc=mhp,dc=local
ldap_default_bind_dn = CN=svc_linux_bind,OU=Service Accounts,DC=mhp,DC=local
ldap_default_authtok_type = password
ldap_default_authtok = {V}
ldap_tls_cacert = /etc/pki/tls/certs/mhp-root-ca.pem
cache_credentials = true
""",
        "h26_pw",
        True,
    ),
    _t(
        "identity/openldap/research-users.ldif",
        r"""
# Research platform LDAP (OpenLDAP), exported 2024-10-14
dn: uid=jdevries,ou=people,dc=rdp,dc=mhp,dc=org
objectClass: inetOrgPerson
uid: jdevries
cn: J. de Vries
mail: j.devries@hoorndijk.nl
userPassword: {V}

dn: uid=asilva,ou=people,dc=rdp,dc=mhp,dc=org
objectClass: inetOrgPerson
uid: asilva
cn: A. Silva
mail: a.silva@saotadeu.com.br
userPassword: {V2}
""",
        "h26_ldap_ssha",
        False,
    ),
    _t(
        "identity/adfs/Add-RelyingParties.ps1",
        r"""
# ADFS relying parties for clinical SaaS (token-signing cert pinned by thumbprint)
Add-AdfsRelyingPartyTrust -Name "Rostering SaaS" `
    -Identifier "https://rostering.example-vendor.com/saml" `
    -MetadataUrl "https://rostering.example-vendor.com/saml/metadata"
Set-AdfsCertificate -CertificateType Token-Signing -Thumbprint "{V}"
Set-AdfsRelyingPartyTrust -TargetName "Rostering SaaS" -EncryptionCertificateRevocationCheck None
# previous signing cert, kept until 2025-03: {V2}
""",
        "h26_thumbprint",
        False,
    ),
    _t(
        "identity/ad/gpo_clinical_workstations.xml",
        r"""
<GPO xmlns="http://www.microsoft.com/GroupPolicy/Settings">
  <Name>MHP - Clinical Workstations - Local Admins</Name>
  <Computer>
    <ExtensionData>
      <Extension>
        <RestrictedGroups>
          <GroupName><SID>{V}</SID><Name>MHP\GG-Desktop-Admins</Name></GroupName>
          <GroupName><SID>{V2}</SID><Name>MHP\GG-Biomed-Engineers</Name></GroupName>
        </RestrictedGroups>
      </Extension>
    </ExtensionData>
  </Computer>
</GPO>
""",
        "h26_sid",
        False,
    ),
    _t(
        "identity/okta/okta.yaml",
        r"""
# okta-cli / SDK config for the vendor-access automation (contractors' accounts)
okta:
  client:
    orgUrl: https://marrowfield.okta.com
    token: {V}
    connectionTimeout: 30
    rateLimit:
      maxRetries: 4
""",
        "h26_okta",
        True,
    ),
    _t(
        "identity/entra/register-app.sh",
        r"""
#!/usr/bin/env bash
# Log in as the automation SP and rotate the portal app's redirect URIs.
set -euo pipefail
az login --service-principal \
  -u 0b7e6d3c-2a41-4f8e-9c5d-7a1b2c3d4e5f \
  -p '{V}' \
  --tenant marrowfieldhealth.onmicrosoft.com
az ad app update --id 5d2f1e0a-8b3c-4d6e-a7f9-0c1b2a3d4e5f \
  --web-redirect-uris https://my.marrowfieldhealth.org/signin-oidc https://my-staging.marrowfieldhealth.org/signin-oidc
""",
        "h26_azure_secret",
        True,
    ),
    _t(
        "identity/kerberos/fhir-gw-keytab.yaml",
        r"""
apiVersion: v1
kind: Secret
metadata:
  name: fhir-gw-keytab
  namespace: integration
type: Opaque
data:
  krb5.keytab: {V}
""",
        "h26_keytab_b64",
        True,
    ),
    _t(
        "identity/ldap/ldap_auth.php",
        r"""
<?php
// Legacy referral portal: authenticate GPs' practice managers against AD
$ldap = ldap_connect('ldaps://dc01.mhp.local');
ldap_set_option($ldap, LDAP_OPT_PROTOCOL_VERSION, 3);
ldap_set_option($ldap, LDAP_OPT_REFERRALS, 0);

$bindDn = 'CN=svc_referral,OU=Service Accounts,DC=mhp,DC=local';
$bindPw = '{V}';
if (!ldap_bind($ldap, $bindDn, $bindPw)) {
    error_log('LDAP bind failed: ' . ldap_error($ldap));
    http_response_code(503);
    exit;
}
""",
        "h26_pw",
        True,
    ),
    _t(
        "identity/ad/SyncService.cs",
        r"""
using System.DirectoryServices;

namespace Mhp.Identity.Sync;

internal static class Directory
{
    // used by the HR -> AD starter/leaver sync
    public static DirectoryEntry Root() =>
        new("LDAP://dc01.mhp.local/OU=Staff,DC=mhp,DC=local", @"MHP\svc_hrsync", "{V}");
}
""",
        "h26_pw",
        True,
    ),
    _t(
        "identity/keycloak/realm-clinical-users.json",
        r"""
{
  "realm": "clinical",
  "users": [
    {
      "username": "svc-dicomweb",
      "enabled": true,
      "credentials": [
        {
          "type": "password",
          "secretData": "{\"value\":\"{V}\",\"salt\":\"Xk2pVq9mL1rT0sWz4yB7cA==\",\"additionalParameters\":{}}",
          "credentialData": "{\"hashIterations\":27500,\"algorithm\":\"pbkdf2-sha256\",\"additionalParameters\":{}}"
        }
      ]
    }
  ]
}
""",
        "h26_keycloak_hash",
        False,
    ),
    _t(
        "identity/docs/laps-and-breakglass.md",
        r"""
# Break-glass accounts

| Account          | Where stored                   | Last rotated | Password |
|------------------|--------------------------------|--------------|----------|
| MHP\bg-domain-01 | Safe in IT office, envelope A  | 2024-09-02   | {V} |
| MHP\bg-domain-02 | Safe at Kettlebeck, envelope B | 2024-09-02   | {V2} |
| Azure bg-cloud   | Keeper "Break glass" folder    | 2024-08-15   | {V3} |

Never write the password itself into this page.
""",
        "h26_redacted",
        False,
    ),
    _t(
        "identity/keycloak/token-verify.yaml",
        r"""
# Realm public key used by the DICOMweb proxy to verify access tokens offline.
# Copied from https://login.mhp.org/realms/clinical (Realm settings -> Keys -> RS256 -> Public key).
issuer: https://login.mhp.org/realms/clinical
audience: dicomweb
algorithms: [RS256]
public_key: |
  {IV}
clock_skew_seconds: 30
""",
        "h26_pubkey_pem",
        False,
    ),
]

# ---------------------------------------------------------------------- IT infrastructure
TEMPLATES += [
    _t(
        "infra/network/core-sw01.cfg",
        r"""
!
hostname mfg-core-sw01
!
aaa new-model
aaa authentication login default group tacacs+ local
!
username netadmin privilege 15 password 0 {V}
username netbackup privilege 5 password 0 {V2}
!
tacacs server ISE01
 address ipv4 10.80.1.21
 key 0 {V3}
!
interface Vlan310
 description MED-DEVICES-4W
 ip address 10.87.4.1 255.255.255.0
!
line vty 0 15
 transport input ssh
!
end
""",
        "h26_pw",
        True,
    ),
    _t(
        "infra/network/dist-sw-meddev.cfg",
        r"""
!
hostname kch-dist-sw02
!
snmp-server group MHP-RO v3 priv read MHP-VIEW
snmp-server community {V} RO SNMP-ACL
snmp-server community {V2} RW SNMP-ACL-RW
snmp-server location Kettlebeck Community Hospital, comms room B1
snmp-server contact netops@mhp.org
snmp-server host 10.80.1.40 version 2c {V}
!
ip access-list standard SNMP-ACL
 permit 10.80.1.40
!
""",
        "h26_snmp_community",
        True,
    ),
    _t(
        "infra/network/fw-edge01.cfg",
        r"""
!
hostname mfg-fw-edge01
enable secret {V}
!
username netadmin privilege 15 secret {V2}
username noc-ro privilege 1 secret {V3}
!
ip ssh version 2
ip domain name mhp.local
!
""",
        "h26_cisco_hash",
        False,
    ),
    _t(
        "infra/fortigate/fgt-dmz-backup.conf",
        r"""
config system admin
    edit "admin"
        set accprofile "super_admin"
        set vdom "root"
        set password {V}
    next
    edit "noc-ro"
        set accprofile "prof_ro"
        set password {V2}
    next
end
config vpn ipsec phase1-interface
    edit "to-saotadeu"
        set interface "wan1"
        set remote-gw 203.0.113.45
        set psksecret {V3}
    next
end
""",
        "h26_fortinet_enc",
        False,
    ),
    _t(
        "infra/ansible/inventory/idrac.yml",
        r"""
# Dell PowerEdge hosts in the Marrowfield datacentre (iDRAC management)
all:
  children:
    idrac:
      hosts:
        mfg-esx01-idrac.mhp.local:
        mfg-esx02-idrac.mhp.local:
        mfg-pacs-db01-idrac.mhp.local:
      vars:
        idrac_user: root
        idrac_password: {V}
        validate_certs: false
""",
        "h26_idrac_default",
        True,
    ),
    _t(
        "infra/ansible/group_vars/all/vault.yml",
        r"""
vault_pacs_backup_password: !vault |
  {IV}
vault_idrac_root_pw: !vault |
  {IV2}
""",
        "h26_ansible_vault",
        False,
    ),
    _t(
        "infra/ansible/roles/pacs_backup/defaults/main.yml",
        r"""
pacs_backup_share: //nas02.mhp.local/pacs-backup
pacs_backup_user: svc_pacs_backup
pacs_backup_password: {V}
pacs_backup_retention_days: 35
idrac_password: {V2}
""",
        "h26_ansible_ref",
        False,
    ),
    _t(
        "infra/backup/cifs-credentials",
        r"""
username=svc_pacs_backup
password={V}
domain=MHP
""",
        "h26_pw",
        True,
    ),
    _t(
        "infra/wifi/medische-wlan.md",
        r"""
# MED-IOT WLAN (Ziekenhuis Hoorndijk)

Voor apparaten die geen 802.1X ondersteunen (oude infuuspompen, weegschalen).

- SSID: `HDK-MED-IOT` (verborgen)
- Beveiliging: WPA2-Personal
- Sleutel (PSK): `{V}`
- VLAN: 412, alleen verkeer naar de device-gateway toegestaan

Sleutel wordt elk half jaar gewijzigd door team Netwerk.
""",
        "h26_pw",
        True,
    ),
    _t(
        "infra/ssh/authorized_keys",
        r"""
# mgmt01 -- managed by ansible role ssh_access
{V}
{V2}
{V3}
""",
        "h26_ssh_pub",
        False,
    ),
    _t(
        "infra/dns/named.conf.keys",
        r"""
// TSIG keys for zone transfers and dynamic updates (mhp.local)
key "xfer-mfg-kch" {
    algorithm hmac-sha256;
    secret "{V}";
};
key "dhcp-ddns" {
    algorithm hmac-sha256;
    secret "{V2}";
};
""",
        "h26_tsig",
        True,
    ),
    _t(
        "infra/pki/mhp-chain.pem",
        r"""
# MHP Issuing CA 02 (intermediate)
{V}
# MHP Root CA (offline root, valid until 2039)
{V2}
""",
        "h26_cert",
        False,
    ),
    _t(
        "infra/ansible/files/backup_id_rsa",
        r"""
{V}
""",
        "h26_rsa_key",
        True,
    ),
    _t(
        "infra/nginx/htpasswd.grafana",
        r"""
noc:{V}
biomed:{V2}
""",
        "h26_htpasswd_hash",
        False,
    ),
    _t(
        "infra/ansible/host_vars/mllp01.mhp.local.yml",
        r"""
# MLLP bridge host (Kettlebeck lab analysers)
mllp_listen_port: 2575
mllp_tls_cert_path: /etc/mllp/tls/bridge.crt
mllp_tls_key_path: /etc/mllp/tls/bridge.key
mllp_tls_key: |
  {IV}
mllp_upstream: https://intf-api.mhp.local/hl7/v2
""",
        "h26_ec_key",
        True,
    ),
]

# ---------------------------------------------------------------------- CI/CD
TEMPLATES += [
    _t(
        ".github/workflows/portal-deploy.yml",
        r"""
name: portal-deploy
on:
  push:
    branches: [main]
jobs:
  deploy:
    runs-on: ubuntu-latest
    environment: production
    steps:
      - uses: actions/checkout@v4
      - uses: azure/docker-login@v2
        with:
          login-server: acrmhp.azurecr.io
          username: acrmhp
          password: {V}
      - run: docker build -t acrmhp.azurecr.io/portal/api:${{ github.sha }} portal/api
      - run: docker push acrmhp.azurecr.io/portal/api:${{ github.sha }}
      - uses: azure/login@v2
        with:
          creds: '{"clientId":"${{ vars.AZURE_CLIENT_ID }}","clientSecret":"{V2}","tenantId":"${{ vars.AZURE_TENANT_ID }}"}'
""",
        "h26_gha_ref",
        False,
    ),
    _t(
        ".github/workflows/research-images.yml",
        r"""
name: research-images
on:
  schedule:
    - cron: "0 4 * * 1"
  workflow_dispatch:
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - name: Log in to Docker Hub (pull-rate limits)
        run: echo "{V}" | docker login -u mhpresearch --password-stdin
      - run: docker build -t acrmhp.azurecr.io/rdp/notebook:$(date +%Y.%m) research/images/notebook
""",
        "h26_docker_pat",
        True,
    ),
    _t(
        ".github/workflows/sonar.yml",
        r"""
name: sonar
on: [pull_request]
jobs:
  scan:
    runs-on: [self-hosted, mhp-linux]
    steps:
      - uses: actions/checkout@v4
        with:
          fetch-depth: 0
      - uses: SonarSource/sonarqube-scan-action@v3
        env:
          SONAR_HOST_URL: https://sonar.mhp.local
          SONAR_TOKEN: {V}
""",
        "h26_sonar",
        True,
    ),
    _t(
        "imaging/.gitlab-ci.yml",
        r"""
stages: [build, deploy]

variables:
  DOCKER_DRIVER: overlay2

build:
  stage: build
  image: docker:27
  script:
    - docker login -u "$CI_REGISTRY_USER" -p "{V}" "$CI_REGISTRY"
    - docker build -t "$CI_REGISTRY_IMAGE/orthanc-router:$CI_COMMIT_SHORT_SHA" .
    - docker push "$CI_REGISTRY_IMAGE/orthanc-router:$CI_COMMIT_SHORT_SHA"

deploy:
  stage: deploy
  image: bitnami/kubectl:1.30
  script:
    - kubectl --token="{V2}" --server=https://aks-mhp-imaging.hcp.westeurope.azmk8s.io set image deploy/orthanc-router router="$CI_REGISTRY_IMAGE/orthanc-router:$CI_COMMIT_SHORT_SHA"
  only: [main]
""",
        "h26_gitlab_ref",
        False,
    ),
    _t(
        "lab/.gitlab-ci.yml",
        r"""
stages: [test, mirror]

test:
  stage: test
  image: maven:3.9-eclipse-temurin-21
  script: mvn -B verify

mirror-to-github:
  stage: mirror
  image: alpine/git
  script:
    - git push --mirror "https://oauth2:{V}@gitlab.mhp.local/lab/lis-client-mirror.git"
  only: [main]
""",
        "h26_gitlab",
        True,
    ),
    _t(
        "interfaces/Jenkinsfile",
        r"""
pipeline {
    agent { label 'linux' }
    environment {
        GH_TOKEN = '{V}'
    }
    stages {
        stage('Checkout channels') {
            steps {
                sh 'git clone https://x-access-token:${GH_TOKEN}@github.com/marrowfield-health/mirth-channels.git'
            }
        }
        stage('Deploy') {
            steps {
                sh './mirth-channels/deploy.sh --env prod'
            }
        }
    }
}
""",
        "h26_github",
        True,
    ),
    _t(
        "portal/.npmrc",
        r"""
@marrowfield:registry=https://npm.pkg.github.com
//npm.pkg.github.com/:_authToken={V}
//registry.npmjs.org/:_authToken={V2}
engine-strict=true
""",
        "h26_npm",
        True,
    ),
    _t(
        "research/pip.conf",
        r"""
[global]
index-url = https://rdp-ci:{V}@nexus.mhp.local/repository/pypi-group/simple
trusted-host = nexus.mhp.local
timeout = 60
""",
        "h26_url_pw",
        True,
    ),
    _t(
        "pharmacy/NuGet.Config",
        r"""
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <packageSources>
    <add key="nuget.org" value="https://api.nuget.org/v3/index.json" />
    <add key="mhp-pharmacy" value="https://pkgs.dev.azure.com/marrowfield-health/_packaging/pharmacy/nuget/v3/index.json" />
  </packageSources>
  <packageSourceCredentials>
    <mhp-pharmacy>
      <add key="Username" value="build" />
      <add key="ClearTextPassword" value="{V}" />
    </mhp-pharmacy>
  </packageSourceCredentials>
</configuration>
""",
        "h26_ado_pat",
        True,
    ),
    _t(
        "lab/.mvn/settings.xml",
        r"""
<settings>
  <servers>
    <server>
      <id>mhp-nexus-releases</id>
      <username>lab-ci</username>
      <password>{V}</password>
    </server>
    <server>
      <id>mhp-nexus-snapshots</id>
      <username>lab-ci</username>
      <password>{V2}</password>
    </server>
  </servers>
</settings>
""",
        "h26_maven_enc",
        False,
    ),
    _t(
        "research/rdp-utils/.pypirc",
        r"""
[distutils]
index-servers =
    pypi
    nexus

[pypi]
username = __token__
password = {V}

[nexus]
repository = https://nexus.mhp.local/repository/pypi-internal/
username = rdp-ci
""",
        "h26_pypi",
        True,
    ),
    _t(
        "scripts/ci/notify_teams.sh",
        r"""
#!/usr/bin/env bash
# Post a deployment card to the "Integration - Deployments" channel
WEBHOOK="{V}"
STATUS="${1:-succeeded}"
curl -sS -H "Content-Type: application/json" -d @- "$WEBHOOK" <<JSON
{"@type":"MessageCard","summary":"Mirth deploy","text":"Mirth channel deploy ${STATUS} on $(hostname)"}
JSON
""",
        "h26_teams_webhook",
        True,
    ),
    _t(
        "scripts/ci/notify_slack.py",
        r"""
import json
import sys
import urllib.request

WEBHOOK_URL = "{V}"


def main() -> None:
    text = " ".join(sys.argv[1:]) or "research image build finished"
    req = urllib.request.Request(
        WEBHOOK_URL, data=json.dumps({"text": text}).encode(), headers={"Content-Type": "application/json"}
    )
    urllib.request.urlopen(req, timeout=10)


if __name__ == "__main__":
    main()
""",
        "h26_slack_webhook",
        True,
    ),
    _t(
        "tests/fixtures/ci_secrets.yml",
        r"""
# Fixture for the pipeline linter tests: every value here is fake on purpose.
registry_password: "{V}"
sonar_token: "{V2}"
teams_webhook: "{V3}"
""",
        "h26_fake_test",
        False,
    ),
    _t(
        "portal/web/package-lock.json",
        r"""
{
  "name": "mymarrowfield-web",
  "version": "3.14.0",
  "lockfileVersion": 3,
  "requires": true,
  "packages": {
    "node_modules/@azure/msal-browser": {
      "version": "3.20.0",
      "resolved": "https://registry.npmjs.org/@azure/msal-browser/-/msal-browser-3.20.0.tgz",
      "integrity": "{V}"
    },
    "node_modules/@stripe/stripe-js": {
      "version": "4.1.0",
      "resolved": "https://registry.npmjs.org/@stripe/stripe-js/-/stripe-js-4.1.0.tgz",
      "integrity": "{V2}"
    }
  }
}
""",
        "h26_integrity",
        False,
    ),
]

# ---------------------------------------------------------------------- cloud: Terraform, Kubernetes, Helm
TEMPLATES += [
    _t(
        "infra/terraform/azure/pacs_archive/main.tf",
        r"""
resource "azurerm_storage_account" "pacs_archive" {
  name                     = "stmhppacsarchive"
  resource_group_name      = azurerm_resource_group.imaging.name
  location                 = "westeurope"
  account_tier             = "Standard"
  account_replication_type = "GRS"
  min_tls_version          = "TLS1_2"
}

resource "azurerm_mssql_server" "mirth" {
  name                         = "sql-mhp-mirth-prod"
  resource_group_name          = azurerm_resource_group.integration.name
  location                     = "westeurope"
  version                      = "12.0"
  administrator_login          = "mirthadmin"
  administrator_login_password = {V}
}

resource "azurerm_key_vault_secret" "archive_key" {
  name         = "pacs-archive-key"
  value        = {V2}
  key_vault_id = data.azurerm_key_vault.prod.id
}
""",
        "h26_tf_ref",
        False,
    ),
    _t(
        "infra/terraform/azure/providers.tf",
        r"""
terraform {
  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = "~> 3.110"
    }
  }
}

provider "azurerm" {
  features {}
  subscription_id = "4c1d9e2f-6a7b-4c8d-9e0f-1a2b3c4d5e6f"
  tenant_id       = "8e7d6c5b-4a39-4281-9f0e-d1c2b3a4f5e6"
  client_id       = "0b7e6d3c-2a41-4f8e-9c5d-7a1b2c3d4e5f"
  client_secret   = "{V}"
}
""",
        "h26_azure_secret",
        True,
    ),
    _t(
        "infra/terraform/aws/research/terraform.tfvars",
        r"""
# research burst compute (GPU spot) -- eu-west-2
region        = "eu-west-2"
project       = "rdp-burst"
{V}
gpu_instance  = "g5.2xlarge"
max_spot_price = "0.95"
""",
        "h26_aws_tf_pair",
        True,
    ),
    _t(
        "infra/aws/credentials.research",
        r"""
[default]
region = eu-west-2

[rdp-burst]
{V}
region = eu-west-2
""",
        "h26_aws_ini_pair",
        True,
    ),
    _t(
        "k8s/portal/secret.yaml",
        r"""
apiVersion: v1
kind: Secret
metadata:
  name: portal-db
  namespace: portal
type: Opaque
data:
  username: cG9ydGFsX2FwaQ==
  password: {V}
""",
        "h26_k8s_b64",
        True,
    ),
    _t(
        "k8s/portal/sealedsecret.yaml",
        r"""
apiVersion: bitnami.com/v1alpha1
kind: SealedSecret
metadata:
  name: portal-stripe
  namespace: portal
spec:
  encryptedData:
    STRIPE_SECRET_KEY: {V}
    STRIPE_WEBHOOK_SECRET: {V2}
  template:
    metadata:
      name: portal-stripe
""",
        "h26_sealed",
        False,
    ),
    _t(
        "k8s/fhir/deployment.yaml",
        r"""
apiVersion: apps/v1
kind: Deployment
metadata:
  name: hapi-fhir
  namespace: integration
spec:
  replicas: 3
  selector:
    matchLabels: { app: hapi-fhir }
  template:
    metadata:
      labels: { app: hapi-fhir }
    spec:
      containers:
        - name: hapi
          image: acrmhp.azurecr.io/integration/hapi-fhir:7.4.0
          env:
            - name: SPRING_DATASOURCE_PASSWORD
              valueFrom:
                secretKeyRef:
                  name: {V}
                  key: password
            - name: HAPI_CLIENT_SECRET
              valueFrom:
                secretKeyRef:
                  name: {V2}
                  key: client-secret
""",
        "h26_secret_name",
        False,
    ),
    _t(
        "k8s/research/secrets.enc.yaml",
        r"""
apiVersion: v1
kind: Secret
metadata:
  name: research-omop-db
  namespace: rdp
type: Opaque
stringData:
  OMOP_DB_PASSWORD: {V}
  REDCAP_TOKEN: {V2}
sops:
  kms: []
  azure_kv:
    - vault_url: https://kv-mhp-research.vault.azure.net
      name: sops-key
      version: 3f9b2c1d0e8a4b7c9d6e5f4a3b2c1d0e
      created_at: "2024-10-01T09:12:44Z"
  lastmodified: "2024-10-01T09:12:45Z"
  mac: {V3}
  version: 3.9.0
""",
        "h26_sops",
        False,
    ),
    _t(
        "research/gcp/imaging-ai-sa.json",
        r"""
{
  "type": "service_account",
  "project_id": "mhp-imaging-ai",
  "private_key_id": "5b0c7e1f9a2d3b4c6e8f0a1b2c3d4e5f6a7b8c9d",
  "private_key": "{V}",
  "client_email": "dicom-ingest@mhp-imaging-ai.iam.gserviceaccount.com",
  "client_id": "104829361740291837465",
  "auth_uri": "https://accounts.google.com/o/oauth2/auth",
  "token_uri": "https://oauth2.googleapis.com/token",
  "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
  "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/dicom-ingest%40mhp-imaging-ai.iam.gserviceaccount.com"
}
""",
        "h26_gcp_sa_key",
        True,
    ),
    _t(
        "infra/terraform/aws/research/outputs.json",
        r"""
{
  "rdp_db_password_ciphertext": {
    "sensitive": false,
    "type": "string",
    "value": "{V}"
  },
  "rdp_api_key_ciphertext": {
    "sensitive": false,
    "type": "string",
    "value": "{V2}"
  }
}
""",
        "h26_kms_blob",
        False,
    ),
    _t(
        "k8s/ingress/portal-tls.yaml",
        r"""
apiVersion: v1
kind: Secret
metadata:
  name: portal-tls
  namespace: portal
type: kubernetes.io/tls
stringData:
  tls.crt: |
    -----BEGIN CERTIFICATE-----
    (see infra/pki/portal-2024.crt)
    -----END CERTIFICATE-----
  tls.key: |
    {IV}
""",
        "h26_pkcs8",
        True,
    ),
    _t(
        "k8s/monitoring/datadog-values.yaml",
        r"""
datadog:
  apiKey: {V}
  site: datadoghq.eu
  clusterName: aks-mhp-portal-prod
  logs:
    enabled: true
    containerCollectAll: false
  apm:
    portEnabled: true
clusterAgent:
  enabled: true
""",
        "h26_datadog_api",
        True,
    ),
    _t(
        "k8s/monitoring/grafana-datasources.yaml",
        r"""
apiVersion: 1
datasources:
  - name: Zabbix
    type: alexanderzobnin-zabbix-datasource
    url: https://zabbix.mhp.local/api_jsonrpc.php
  - name: Grafana Cloud (portal)
    type: prometheus
    url: https://prometheus-prod-24-prod-eu-west-2.grafana.net/api/prom
    jsonData:
      httpHeaderName1: Authorization
    secureJsonData:
      httpHeaderValue1: "Bearer {V}"
""",
        "h26_grafana",
        True,
    ),
    _t(
        "k8s/monitoring/newrelic-infra.yml",
        r"""
license_key: {V}
display_name: mhp-lis-app01
log:
  level: info
custom_attributes:
  environment: production
  site: marrowfield-general
""",
        "h26_newrelic",
        True,
    ),
    _t(
        "infra/vault/README.md",
        r"""
# Vault (research platform) -- bootstrap notes

Initialised 2024-09-18 by M. Okafor. Unseal keys are split between three key holders (see the
key-ceremony record). The initial root token was:

    {V}

It must be revoked once the OIDC auth method is configured (`vault token revoke <token>`).
""",
        "h26_vault_token",
        True,
    ),
    _t(
        "infra/terraform/azure/servicebus/app.tfvars",
        r"""
# ADT event fan-out to the portal and the bed-management app
servicebus_namespace = "sb-mhp-hl7-prod"
topic                = "adt-events"
sender_connection    = "{V}"
""",
        "h26_azure_sb_conn",
        True,
    ),
]

# ---------------------------------------------------------------------- runbooks (English, Dutch, Brazilian Portuguese)
TEMPLATES += [
    _t(
        "docs/runbooks/en/mirth-failover.md",
        r"""
# Runbook: Mirth Connect failover (prod-a -> prod-b)

**When:** prod-a unresponsive for > 5 minutes, or queue depth on `ADT_A08_to_HiX` > 2,000.

1. Confirm in Zabbix that `mirth-prod-a` is down (trigger "Mirth API not responding").
2. On `mirth-prod-b`, start the service: `sudo systemctl start mcservice`.
3. Log in to the Administrator client as `admin`. The password is {V} (rotate after use and
   update Keeper).
4. Deploy all channels: *Channels -> Deploy All*.
5. Update the F5 pool `pool_mirth_mllp` to send traffic to prod-b.
6. Tell the lab and the ED charge nurse in Teams channel **Interfaces - Incidents**.
""",
        "h26_pw",
        True,
    ),
    _t(
        "docs/runbooks/nl/pacs-storing.md",
        r"""
# Draaiboek: storing PACS-viewer (Hoorndijk)

**Symptoom:** radiologen kunnen geen beelden openen, viewer geeft "Study not found".

1. Controleer of de router-service draait op `hdk-pacsrouter01`.
2. Log in op de beheerconsole (https://hdk-pacs01:8443/admin) met gebruiker `pacsbeheer`.
   Het wachtwoord is `{V}`.
3. Herstart de DICOM-router via *Services -> dicom-router -> Restart*.
4. Meld de storing in TOPdesk onder categorie "Beeldvorming".
""",
        "h26_weak_pw",
        True,
    ),
    _t(
        "docs/runbooks/pt/lis-contingencia.md",
        r"""
# Plano de contingência: LIS fora do ar (São Tadeu)

1. Avisar o laboratório e ativar os formulários de papel (modelo LAB-07).
2. Acessar o servidor de interface `st-lisintf01` com o usuário `integra_lab`.
3. Senha do banco de dados do middleware: {V}
4. Verificar a fila de mensagens HL7 pendentes:
   `SELECT count(*) FROM fila_oru WHERE status = 'PENDENTE';`
5. Quando o LIS voltar, reenviar as mensagens pendentes pela tela de reprocessamento.
""",
        "h26_pw",
        True,
    ),
    _t(
        "docs/runbooks/en/password-rotation-policy.md",
        r"""
# Service account password rotation

| Setting                           | Value |
|-----------------------------------|-------|
| Minimum length (service accounts) | {V}   |
| Maximum age (days)                | 365   |
| History (passwords remembered)    | 24    |

Service-account passwords are generated by the PAM tool and never typed by hand. Where an
application cannot fetch a password at start-up, raise a risk acceptance with Information
Security.
""",
        "h26_pw_policy",
        False,
    ),
    _t(
        "docs/runbooks/nl/wachtwoordbeleid-koppelingen.md",
        r"""
# Wachtwoordbeleid voor koppelaccounts

- Koppelaccounts krijgen een wachtwoord van minimaal 20 tekens uit de kluis.
- In configuratiebestanden staat alleen een verwijzing, bijvoorbeeld:

      hix.ws.wachtwoord={V}

- Wachtwoorden worden nooit via Teams of e-mail gedeeld.
""",
        "h26_placeholder_nl",
        False,
    ),
    _t(
        "docs/runbooks/pt/acesso-vpn.md",
        r"""
# Acesso VPN para os radiologistas (São Tadeu)

| Usuário     | Perfil            | Senha        |
|-------------|-------------------|--------------|
| laudo_sp01  | telerradiologia   | {V} |
| laudo_sp02  | telerradiologia   | {V2} |
| ti_saotadeu | suporte           | {V3} |

As senhas são entregues individualmente pelo cofre de senhas; não registrar aqui.
""",
        "h26_redacted",
        False,
    ),
    _t(
        "docs/runbooks/en/downtime-reporting-db.md",
        r"""
# Downtime: read-only reporting database

During an EHR downtime the bed boards switch to the read-only replica.

```
psql "postgresql://{V}@report-replica.mhp.local:5432/bedboard" -c "select * from v_census"
```

(Yes, the username and password are the same -- ticket PRB0004411 tracks fixing it.)
""",
        "h26_ueqp_colon",
        True,
    ),
    _t(
        "docs/vendor-portals.csv",
        r"""
vendor,portal,login,password,notes
PACS vendor,https://support.pacs-vendor.example/portal,mhp_imaging,{V},support contract 2024-2027
Pump vendor,https://pumps-vendor.example/serviceportal,mhp_biomed,{V2},firmware downloads
Cabinet vendor,https://cabinet-vendor.example/care,mhp_pharmacy,{V3},
""",
        "h26_pw",
        True,
    ),
    _t(
        "docs/runbooks/en/ehr-downtime-bca.md",
        r"""
# EHR downtime: business continuity access (BCA) PCs

The BCA PCs print the last census and MAR every hour. Their service account password is not
stored here; the print job reads it from {V} at run time.

If a BCA PC has not printed for two hours, check the scheduled task `BCA-Print` and its
last run result.
""",
        "h26_vault_ref",
        False,
    ),
    _t(
        "docs/runbooks/nl/hix-koppelingen-herstarten.md",
        r"""
# Draaiboek: HiX-koppelingen herstarten

1. Stop de Mirth-kanalen die naar HiX schrijven (`ADT_A08_to_HiX`, `ORU_to_HiX`).
2. Controleer de wachtrijtabel in de HiX-staging database:

       sqlplus {V}@HIXSTG
       SQL> select count(*) from koppel_wachtrij where status = 'N';

3. Start de kanalen opnieuw en controleer of de wachtrij leegloopt.
""",
        "h26_ueqp_slash",
        True,
    ),
    _t(
        "docs/runbooks/pt/backup-pacs.md",
        r"""
# Backup mensal do PACS para o Azure

Copiar os estudos do mês para o contêiner frio com o azcopy:

```
azcopy copy "/srv/pacs/export/2024-10/*" "{V}" --recursive
```

O link SAS vence no fim do trimestre; pedir um novo para a equipe de nuvem da MHP.
""",
        "h26_azure_sas_url",
        True,
    ),
]

# ---------------------------------------------------------------------- chat exports and tickets
TEMPLATES += [
    _t(
        "exports/teams/interfaces-incidents_2024-03-11.json",
        r"""
[
  {"from": "Priya Raman", "createdDateTime": "2024-03-11T08:51:02Z",
   "body": "ADT queue to HiX is at 3k again, can someone look?"},
  {"from": "Tom Hale", "createdDateTime": "2024-03-11T08:53:40Z",
   "body": "on it. need the audit db login for mirth-prod-b though"},
  {"from": "Priya Raman", "createdDateTime": "2024-03-11T08:54:12Z",
   "body": "intf_audit / {V} -- please change it after, it's been in chat now"},
  {"from": "Tom Hale", "createdDateTime": "2024-03-11T09:20:55Z",
   "body": "queue drained, failover done. will rotate today"}
]
""",
        "h26_pw",
        True,
    ),
    _t(
        "exports/slack/research-platform/2024-05-14.json",
        r"""
[
  {
    "type": "message",
    "user": "U05RDP0A1",
    "text": "the CI bot can't push to rdp-utils any more, token expired",
    "ts": "1715680211.000100"
  },
  {
    "type": "message",
    "user": "U05RDP0B7",
    "text": "made a new fine-grained one, scoped to that repo only: {V}",
    "ts": "1715680532.000300"
  },
  {
    "type": "message",
    "user": "U05RDP0A1",
    "text": "thanks, added it to the actions secrets",
    "ts": "1715680610.000500"
  }
]
""",
        "h26_github_fine",
        True,
    ),
    _t(
        "exports/slack/it-ops/2024-07-02.txt",
        r"""
[09:12] mokafor: anyone have working creds for the rdp-burst account? terraform is failing
[09:14] rpatel: use these until SSO is sorted, they're the break-glass ones
[09:14] rpatel: ```
{V}
```
[09:15] mokafor: works, thanks. I'll ask for them to be rotated once the plan is applied
""",
        "h26_aws_env_pair",
        True,
    ),
    _t(
        "exports/teams/servicedesk-hoorndijk.txt",
        r"""
[08:02] Anouk (Servicedesk): Goedemorgen, de verpleegpost 3B kan niet inloggen op de gedeelde werkplek
[08:04] Bram (Werkplekbeheer): Welk account gebruiken ze?
[08:04] Anouk (Servicedesk): hdk-3b-werkplek
[08:06] Bram (Werkplekbeheer): Ik heb het gereset, het wachtwoord is nu {V}
[08:07] Anouk (Servicedesk): Top, ik geef het door aan de teamleider
""",
        "h26_weak_pw",
        True,
    ),
    _t(
        "exports/teams/telerradiologia.txt",
        r"""
[22:41] Dra. Souza: não consigo entrar no visualizador, diz senha expirada
[22:43] Plantão TI MHP: resetei o usuário laudo_sp02. Nova senha: {V}
[22:44] Dra. Souza: entrou, obrigada!
[22:45] Plantão TI MHP: troque no primeiro acesso, por favor
""",
        "h26_pw",
        True,
    ),
    _t(
        "tickets/servicenow/INC0045123.json",
        r"""
{
  "number": "INC0045123",
  "short_description": "STOW to VNA returns 401 from the teleradiology gateway",
  "assignment_group": "Imaging Applications",
  "work_notes": [
    "Reproduced with curl from telerad-gw01.",
    "curl -v -H 'Authorization: Basic {V}' https://vna.mhp.local/dcm4chee-arc/aets/MHPVNA/rs/studies -> 401",
    "Account svc-stow was locked after the AD password change; unlocked and updated the gateway config."
  ],
  "state": "Resolved",
  "close_code": "Solved (Permanently)"
}
""",
        "h26_basic",
        True,
    ),
    _t(
        "tickets/jira/RDP-412.md",
        r"""
# RDP-412: REDCap export job fails with 403

**Reporter:** A. Silva  **Component:** research-ingest

Job log (token removed by the security bot):

```
POST https://redcap.mhp.org/api/ token={V} content=record format=json -> 403 Forbidden
```

Root cause: the project API token was regenerated by the study coordinator. The job now reads
the token from Key Vault (`kv-mhp-research/redcap-412`).
""",
        "h26_redacted",
        False,
    ),
    _t(
        "tickets/jira/INT-977.md",
        r"""
# INT-977: automation account for ticket sync (ServiceNow -> Jira)

Created `svc-jira-sync@mhp.org` and generated an API token for the sync script:

`{V}`

Script: `scripts/jira_sync.py`, runs every 10 minutes on mgmt01.
""",
        "h26_atlassian",
        True,
    ),
    _t(
        "exports/slack/devices-integration/2024-08-20.json",
        r"""
[
  {"type": "message", "user": "U05BIO0C2",
   "text": "pump on 4W bed 12 isn't showing in the gateway, serial {V}", "ts": "1724140802.000100"},
  {"type": "message", "user": "U05BIO0D9",
   "text": "it's registered under a different UDI: {V2}, I'll merge them", "ts": "1724141010.000200"}
]
""",
        "h26_device_id",
        False,
    ),
    _t(
        "exports/teams/identity-team.txt",
        r"""
[14:02] Lena: how should the cabinet sync script get the svc password now?
[14:05] Marco: not in the script any more. use `{V}`, the SecretManagement vault is registered on mgmt01
[14:06] Lena: ok, and for the prod variant the same?
[14:06] Marco: yes, same name, different vault
""",
        "h26_ps_ref",
        False,
    ),
    _t(
        "tickets/servicenow/CHG0031877.md",
        r"""
# CHG0031877: scan-to-email for the Kettlebeck outpatient MFDs

- SMTP relay: smtp.office365.com:587 (STARTTLS)
- Sender mailbox: scanner-kch@marrowfieldhealth.org
- App password generated for the mailbox (MFA enabled): {V}
- Configured on MFD-KCH-OP01 .. OP04 via the printer web UI.

Backout: remove the SMTP profile from the MFDs.
""",
        "h26_app_password",
        True,
    ),
    _t(
        "tickets/jira/PORTAL-877.md",
        r"""
# PORTAL-877: payment webhooks failing in staging

Stripe dashboard shows 400s on `/api/payments/webhook`. Root cause: the staging config still
had a value copied from a vendor's documentation sample instead of the real staging credential:

    {V}

Replaced it with the staging value from Key Vault; webhooks now return 200. Added a lint rule
that rejects documentation sample values in `config/*.env`.
""",
        "h26_doc_example",
        False,
    ),
    _t(
        "exports/slack/it-ops/2024-09-09.txt",
        r"""
[16:20] jdevries: new bot for the #it-alerts channel is live
[16:21] jdevries: token if you want to test from your laptop: {V}
[16:21] rpatel: please don't paste tokens here, move it to the vault
[16:22] jdevries: fair, will rotate tomorrow
""",
        "h26_slack_bot",
        True,
    ),
]
