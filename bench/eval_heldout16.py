"""Blind part ``heldout16``: Brenvik University Hospital and the Brenvik Research Institute (a
fictional academic medical centre with sites in Norway, Finland and Estonia). Files are the
electronic health record's integration layer (HL7 v2 over MLLP, Mirth Connect channels, FHIR
servers and SMART backend-services clients in Java/Spring, C#/.NET, Go and TypeScript, HelseID,
Kanta and X-Road connections), PACS and lab systems (Orthanc, DICOMweb gateways, LIS interfaces,
modality worklists), the biobank LIMS (PHP and Python apps, SQL schemas, barcode printers),
research computing (Slurm and HPC scripts, JupyterHub, R and ``.Renviron``, Snakemake and
Nextflow pipelines, S3/MinIO data lakes, Databricks-like notebooks, Hugging Face and OpenAI
clients), the patient app (Swift, Kotlin, React Native, push keys, SMS and e-mail providers), the
medical-device network (infusion-pump gateways, SNMP, nurse-call SIP), the hospital's own IT
(Active Directory and LDAP binds, Citrix, print servers, Wi-Fi, PowerShell and batch scripts,
Group Policy leftovers) and vendors' remote support (VPN profiles, jump hosts, support tickets).
Deploy files are Compose, Kubernetes, Helm, Terraform (Azure), Ansible, systemd and Nginx; CI is
GitHub Actions, GitLab CI, Jenkins and Azure Pipelines; docs are runbooks, wikis, tickets and
Teams/Slack chat exports in English, Norwegian (bokmål), Finnish and Estonian, plus i18n files,
notebooks, tests and fixtures and recorded HTTP cassettes. Written blind (without seeing the
scanner, its rules or other parts' templates).

Positives are values that would grant access if live: passwords of every strength (dictionary
and seasonal words in four languages, vendor defaults on real hospital hosts, long random ones,
Wi-Fi and IPsec pre-shared keys, token PINs), service tokens in their real formats (GitHub with
its CRC32 checksum, GitLab, npm, PyPI macaroons, Azure AD client secrets, Azure storage keys and
SAS signatures, Service Bus connection strings, Azure DevOps PATs, Slack, Teams/Logic Apps
webhook signatures, Twilio, SendGrid, Vault ``hvs.`` tokens, Grafana, Hugging Face, OpenAI, FCM
server keys, Seqera/Tower tokens, HMAC-signed JWTs), private keys with real DER structure (RSA
PKCS#1 and PKCS#8, SEC1 EC, OpenSSH Ed25519, private JWKs, service-account JSON), URI
credentials, Basic-auth strings, credentials in prose, CLI arguments, comments, tests and lookup
defaults.

Negatives sit in the same files under the same key names: references to environment variables,
Key Vault, Vault, CI secrets and template variables in every language, placeholders and
redactions in four languages, password hashes (bcrypt, argon2, PostgreSQL SCRAM and md5, LDAP
SSHA, SQL Server, PBKDF2), values encrypted at rest (Ansible Vault, SOPS, Jasypt, sealed secrets,
DPAPI blobs, encrypted PKCS#8), public material (real certificates, public keys, SSH keys, public
JWKs, thumbprints and fingerprints), identifiers shaped like secrets (DICOM UIDs, HL7 control
ids, specimen barcodes, Twilio account SIDs, UUIDs, commit hashes, image digests, SRI hashes), UI
and i18n text about passwords, documented example credentials, role-word pairs and test values
that say they are fake.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import string
import uuid
import zlib

import evalset
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

MULTI_SLOT = True

HEX = "0123456789abcdef"
HEXU = "0123456789ABCDEF"
DIGITS = string.digits
ALNUM = string.ascii_letters + string.digits
URLSAFE = ALNUM + "-_"
UPNUM = string.ascii_uppercase + string.digits
LOWNUM = string.ascii_lowercase + string.digits
B62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
B32L = "abcdefghijklmnopqrstuvwxyz234567"
PW_SYMBOLS = "!#%*-_=+.@?"
CRYPT64 = "./" + ALNUM
SMALL_PRIMES = [p for p in range(3, 2000) if all(p % q for q in range(2, int(p**0.5) + 1))]


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _der(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + _der_len(len(body)) + body


def _ssh_str(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


class Heldout16Values(evalset.Values):
    """Value generators of the heldout16 part; every name starts with ``h16_``."""

    def __init__(self, seed: int, flavour: str) -> None:
        super().__init__(seed, flavour)
        self.words = [
            "fjord",
            "nordlys",
            "revontuli",
            "sauna",
            "lakka",
            "multe",
            "rabarber",
            "kuusk",
            "rukkilill",
            "tunturi",
            "vidde",
            "brygge",
            "saaristo",
            "laine",
            "poro",
            "skjaergard",
        ]
        self.users = [
            "epj_integrasjon",
            "pacs_ro",
            "lims_app",
            "mirth",
            "fhir_gw",
            "svc_citrix",
            "svc_print",
            "biobank_etl",
            "hpc_sched",
            "pasientapp",
            "labsys",
            "nursecall",
        ]

    # ------------------------------------------------------------------ helpers (not slots)
    def h16_util_b64(self, n: int, urlsafe: bool = False, pad: bool = True) -> str:
        raw = self.rng.randbytes(n)
        out = (base64.urlsafe_b64encode(raw) if urlsafe else base64.b64encode(raw)).decode()
        return out if pad else out.rstrip("=")

    def h16_util_crc_token(self, prefix: str) -> str:
        body = self.s(30, ALNUM)
        crc = zlib.crc32(body.encode())
        check = ""
        while crc:
            crc, rest = divmod(crc, 62)
            check = B62[rest] + check
        return f"{prefix}_{body}{check.rjust(6, '0')}"

    def h16_util_armor(self, label: str, der: bytes) -> str:
        body = base64.b64encode(der).decode()
        rows = [body[i : i + 64] for i in range(0, len(body), 64)]
        return f"-----BEGIN {label}-----\n" + "\n".join(rows) + f"\n-----END {label}-----"

    def h16_util_is_prime(self, n: int) -> bool:
        if n < 2:
            return False
        for p in SMALL_PRIMES:
            if n % p == 0:
                return n == p
        d, r = n - 1, 0
        while d % 2 == 0:
            d //= 2
            r += 1
        for a in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37):
            x = pow(a, d, n)
            if x in (1, n - 1):
                continue
            for _ in range(r - 1):
                x = pow(x, 2, n)
                if x == n - 1:
                    break
            else:
                return False
        return True

    def h16_util_prime(self, bits: int) -> int:
        while True:
            cand = self.rng.getrandbits(bits) | (3 << (bits - 2)) | 1
            if cand % 65537 != 1 and self.h16_util_is_prime(cand):
                return cand

    def h16_util_rsa(self, bits: int = 2048) -> rsa.RSAPrivateKey:
        e = 65537
        while True:
            p = self.h16_util_prime(bits // 2)
            q = self.h16_util_prime(bits // 2)
            if p == q:
                continue
            if p < q:
                p, q = q, p
            phi = (p - 1) * (q - 1)
            d = pow(e, -1, phi)
            pub = rsa.RSAPublicNumbers(e, p * q)
            nums = rsa.RSAPrivateNumbers(p, q, d, d % (p - 1), d % (q - 1), pow(q, -1, p), pub)
            return nums.private_key()

    def h16_util_ec(self) -> ec.EllipticCurvePrivateKey:
        order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
        return ec.derive_private_key(self.rng.randrange(1, order), ec.SECP256R1())

    def h16_util_ed25519(self) -> ed25519.Ed25519PrivateKey:
        return ed25519.Ed25519PrivateKey.from_private_bytes(self.rng.randbytes(32))

    def h16_util_b64u_int(self, n: int, length: int) -> str:
        return base64.urlsafe_b64encode(n.to_bytes(length, "big")).decode().rstrip("=")

    def h16_util_host(self) -> str:
        return self.pick(
            [
                "bvk-pacs01.brenvik-uh.no",
                "lis-prod.brenvik-uh.no",
                "mirth02.int.brenvik-uh.no",
                "epj-db01.brenvik-uh.no",
                "lims.bri.brenvik-uh.no",
                "hpc-login1.bri.brenvik-uh.no",
                "fhir.brenvik-uh.no",
                "tartu-lab.brenvik-uh.ee",
                "oulu-kuvantaminen.brenvik-uh.fi",
            ]
        )

    # ------------------------------------------------------------------ positives: passwords
    def h16_pw(self) -> str:
        shape = self.rng.randrange(6)
        word = self.pick(self.words)
        if shape == 0:
            return word.capitalize() + str(self.rng.randrange(10, 9999)) + self.pick(list("!#%*.?"))
        if shape == 1:
            return self.s(1, string.ascii_letters) + self.s(
                self.rng.randrange(12, 20), ALNUM + PW_SYMBOLS
            )
        if shape == 2:
            other = self.pick([w for w in self.words if w != word])
            return f"{word.capitalize()}-{other.capitalize()}-{self.s(2, DIGITS)}"
        if shape == 3:
            return "Bvk" + self.s(11, ALNUM) + self.pick(list("!#%"))
        if shape == 4:
            return self.s(18, ALNUM)
        leet = word.replace("a", "@").replace("o", "0").replace("e", "3").replace("i", "1")
        return leet[0].upper() + leet[1:] + self.pick(["#", "$", "!"]) + self.s(3, DIGITS)

    def h16_weak_pw(self) -> str:
        shape = self.rng.randrange(5)
        if shape == 0:
            return self.pick(
                [
                    "Velkommen1",
                    "Tervetuloa1",
                    "Tere1234",
                    "Brenvik123",
                    "Sykehus2024",
                    "Sairaala1!",
                    "Haigla2023",
                    "Passord1",
                    "Salasana1",
                    "Parool123",
                ]
            )
        if shape == 1:
            season = self.pick(
                ["Sommer", "Vinter", "Kesä", "Talvi", "Syksy", "Suvi", "Talv", "Kevad", "Høst"]
            )
            return season + str(self.rng.randrange(2019, 2027)) + self.pick(["", "!", "#"])
        if shape == 2:
            return "Brenvik" + str(self.rng.randrange(2015, 2027)) + self.pick(["", "!", "?"])
        if shape == 3:
            return self.pick(self.words).capitalize() + self.pick(["1", "123", "2024", "!"])
        return self.pick(["Januar", "Helmikuu", "Märts", "Oktober"]) + str(
            self.rng.randrange(20, 27)
        )

    def h16_vendor_pw(self) -> str:
        return self.pick(
            [
                "admin",
                "calvin",
                "orthanc",
                "1234",
                "0000",
                "12345678",
                "password",
                "Admin123",
                "admin1234",
                "P@ssw0rd",
                "sysadmin",
                "service",
                "7654321",
                "1111",
            ]
        )

    def h16_long_pw(self) -> str:
        return self.s(1, string.ascii_letters) + self.s(
            self.rng.randrange(27, 44), ALNUM + PW_SYMBOLS + "^&"
        )

    def h16_passphrase(self) -> str:
        words = [self.pick(self.words) for _ in range(self.rng.randrange(3, 5))]
        return self.pick(["-", " ", "."]).join(words) + self.s(2, DIGITS)

    def h16_wifi_psk(self) -> str:
        if self.rng.randrange(2):
            return self.h16_passphrase()
        return self.s(self.rng.randrange(16, 32), ALNUM + "!#%+")

    def h16_url_pw(self) -> str:
        if self.rng.randrange(2):
            return (
                self.pick(self.words).capitalize() + self.s(4, DIGITS) + self.pick(["", "x", "Q"])
            )
        return self.s(1, string.ascii_letters) + self.s(self.rng.randrange(13, 22), ALNUM + "-_.")

    def h16_basic_b64(self) -> str:
        user = self.pick([*self.users, "svc-ci", "bvk-deploy"])
        return base64.b64encode(f"{user}:{self.h16_pw()}".encode()).decode()

    def h16_b64_pw(self) -> str:
        return base64.b64encode(self.h16_pw().encode()).decode()

    def h16_pin(self) -> str:
        return self.s(self.rng.choice([6, 8, 8, 10]), DIGITS)

    def h16_snmp_community(self) -> str:
        return self.pick(["bvk", "mtnet", "medtek", "nms"]) + "-" + self.s(10, ALNUM)

    def h16_psk(self) -> str:
        return self.s(self.rng.randrange(32, 48), ALNUM + "+/=_")

    # ------------------------------------------------------------------ positives: tokens
    def h16_api_key(self) -> str:
        return self.pick(["brv_live_", "bvklims_", "bri_sk_"]) + self.s(32, ALNUM)

    def h16_client_secret(self) -> str:
        return self.pick(
            [self.s(48, URLSAFE), self.h16_util_b64(32, urlsafe=True, pad=False), self.s(40, ALNUM)]
        )

    def h16_github(self) -> str:
        return self.h16_util_crc_token(self.pick(["ghp", "ghp", "gho", "ghs"]))

    def h16_github_fine(self) -> str:
        return f"github_pat_11{self.s(20, UPNUM)}_{self.s(59, ALNUM)}"

    def h16_gitlab(self) -> str:
        return self.pick(["glpat-", "glpat-", "gldt-"]) + self.s(20, URLSAFE)

    def h16_npm(self) -> str:
        return self.h16_util_crc_token("npm")

    def h16_pypi(self) -> str:
        ident = str(uuid.UUID(int=self.rng.getrandbits(128), version=4)).replace("-", "").encode()
        project = self.pick(["brenvik-fhirkit", "bri-omics", "bvk-dicomtools"])
        caveat = json.dumps({"version": 1, "permissions": {"projects": [project]}}).encode()
        mac = b"\x02" + b"\x01\x08pypi.org" + b"\x02" + bytes([len(ident)]) + ident + b"\x00"
        mac += b"\x02" + bytes([len(caveat)]) + caveat + b"\x00" + b"\x00"
        mac += b"\x06\x20" + self.rng.randbytes(32)
        return "pypi-" + base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def h16_azure_secret(self) -> str:
        return self.s(3, ALNUM + "_~.") + self.s(1, DIGITS) + "Q~" + self.s(34, ALNUM + "_~.-")

    def h16_azure_storage_key(self) -> str:
        return self.h16_util_b64(64)

    def h16_azure_conn(self) -> str:
        account = self.pick(["bvkresearchlake", "bvkpacsarchive", "brilimsexport", "bvkappmedia"])
        return (
            f"DefaultEndpointsProtocol=https;AccountName={account};"
            f"AccountKey={self.h16_util_b64(64)};EndpointSuffix=core.windows.net"
        )

    def h16_servicebus_conn(self) -> str:
        ns = self.pick(["bvk-hl7-bus", "bvk-fhir-events", "bri-lims-sb"])
        return (
            f"Endpoint=sb://{ns}.servicebus.windows.net/;SharedAccessKeyName="
            f"{self.pick(['RootManageSharedAccessKey', 'sender', 'listen-send'])};"
            f"SharedAccessKey={self.h16_util_b64(32)}"
        )

    def h16_sas(self) -> str:
        sig = base64.b64encode(self.rng.randbytes(32)).decode()
        sig = sig.replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")
        return (
            "sv=2022-11-02&ss=b&srt=co&sp=rwlc&se=2027-06-30T21:59:59Z&st=2025-01-01T00:00:00Z"
            f"&spr=https&sig={sig}"
        )

    def h16_azdo_pat(self) -> str:
        if self.rng.randrange(2):
            return self.s(52, B32L)
        year = self.pick(list("BCD"))
        month = self.pick(list("ABCDEFGHIJKL"))
        return (
            self.s(52, ALNUM)
            + "JQQJ99"
            + year
            + month
            + self.s(16, ALNUM)
            + "AZDO"
            + self.s(4, ALNUM)
        )

    def h16_slack_bot(self) -> str:
        return f"xoxb-{self.s(12, DIGITS)}-{self.s(13, DIGITS)}-{self.s(24, ALNUM)}"

    def h16_slack_webhook(self) -> str:
        return (
            f"https://hooks.slack.com/services/T{self.s(10, UPNUM)}/B{self.s(10, UPNUM)}/"
            f"{self.s(24, ALNUM)}"
        )

    def h16_teams_webhook(self) -> str:
        if self.rng.randrange(2):
            ids = [str(uuid.UUID(int=self.rng.getrandbits(128), version=4)) for _ in range(3)]
            return (
                f"https://brenvikuh.webhook.office.com/webhookb2/{ids[0]}@{ids[1]}"
                f"/IncomingWebhook/{self.s(32, HEX)}/{ids[2]}"
            )
        return (
            f"https://prod-{self.rng.randrange(10, 99)}.westeurope.logic.azure.com:443/workflows/"
            f"{self.s(32, HEX)}/triggers/manual/paths/invoke?api-version=2016-06-01"
            f"&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={self.s(43, URLSAFE)}"
        )

    def h16_twilio_token(self) -> str:
        return self.s(32, HEX)

    def h16_sendgrid(self) -> str:
        return f"SG.{self.s(22, URLSAFE)}.{self.s(43, URLSAFE)}"

    def h16_vault_token(self) -> str:
        inner = b"\x08\x01\x12\x20" + self.rng.randbytes(32)
        inner += b"\x1a\x1e\x0a\x1chvs." + self.s(24, ALNUM).encode()
        return "hvs." + base64.urlsafe_b64encode(inner).decode().rstrip("=")

    def h16_jwt(self) -> str:
        def part(obj: dict[str, object]) -> str:
            raw = json.dumps(obj, separators=(",", ":")).encode()
            return base64.urlsafe_b64encode(raw).decode().rstrip("=")

        header = part({"alg": "HS256", "typ": "JWT"})
        payload = part(
            {
                "iss": self.pick(["bvk-dicomweb-gw", "fhir.brenvik-uh.no", "lims-api"]),
                "sub": self.pick(self.users),
                "scope": self.pick(["system/*.read", "studies:read", "samples:write"]),
                "iat": 1735689600 + self.rng.randrange(10**7),
            }
        )
        key = self.rng.randbytes(32)
        sig = hmac.new(key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        return f"{header}.{payload}." + base64.urlsafe_b64encode(sig).decode().rstrip("=")

    def h16_fcm_key(self) -> str:
        return f"AAAA{self.s(7, URLSAFE)}:APA91b{self.s(134, URLSAFE)}"

    def h16_tower_token(self) -> str:
        raw = json.dumps({"tid": self.rng.randrange(1000, 99999)}) + "." + self.s(40, HEX)
        return base64.b64encode(raw.encode()).decode()

    def h16_hex32_key(self) -> str:
        return self.s(32, HEX)

    def h16_hmac_key(self) -> str:
        return self.s(64, HEX)

    def h16_harbor_secret(self) -> str:
        return self.s(32, ALNUM)

    def h16_grafana(self) -> str:
        body = self.s(32, ALNUM)
        crc = zlib.crc32(f"glsa_{body}".encode())
        return f"glsa_{body}_{crc:08x}"

    def h16_hf(self) -> str:
        return "hf_" + self.s(34, string.ascii_letters)

    def h16_openai(self) -> str:
        return f"sk-proj-{self.s(58, URLSAFE)}T3BlbkFJ{self.s(58, URLSAFE)}"

    def h16_jupyter_token(self) -> str:
        return self.s(48, HEX)

    def h16_django_key(self) -> str:
        return self.s(50, string.ascii_lowercase + DIGITS + "!@#%^&*(-_=+)")

    def h16_aws_ini_pair(self) -> str:
        return (
            f"aws_access_key_id = AKIA{self.s(16, string.ascii_uppercase + '234567')}\n"
            f"aws_secret_access_key = {self.s(40, ALNUM + '/+')}"
        )

    def h16_aws_env_pair(self) -> str:
        return (
            f"AWS_ACCESS_KEY_ID=AKIA{self.s(16, string.ascii_uppercase + '234567')}\n"
            f"AWS_SECRET_ACCESS_KEY={self.s(40, ALNUM + '/+')}"
        )

    def h16_minio_secret(self) -> str:
        return self.s(40, ALNUM + "/+")

    # ------------------------------------------------------------------ positives: private keys
    def h16_rsa_key(self) -> str:
        key = self.h16_util_rsa()
        return (
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
            .decode()
            .strip()
        )

    def h16_pkcs8_key(self) -> str:
        key = self.h16_util_rsa() if self.rng.randrange(2) else self.h16_util_ec()
        return (
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            .decode()
            .strip()
        )

    def h16_ec_key(self) -> str:
        return (
            self.h16_util_ec()
            .private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
            .decode()
            .strip()
        )

    def h16_openssh_key(self) -> str:
        key = self.h16_util_ed25519()
        seed = key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        pub = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        kt = b"ssh-ed25519"
        pub_blob = _ssh_str(kt) + _ssh_str(pub)
        check = self.rng.randbytes(4)
        comment = f"{self.pick(self.users)}@{self.pick(['hpc-login1', 'jump01', 'mirth02'])}"
        priv = check + check + _ssh_str(kt) + _ssh_str(pub) + _ssh_str(seed + pub)
        priv += _ssh_str(comment.encode())
        pad = 1
        while len(priv) % 8:
            priv += bytes([pad])
            pad += 1
        blob = b"openssh-key-v1\x00" + _ssh_str(b"none") + _ssh_str(b"none") + _ssh_str(b"")
        blob += (1).to_bytes(4, "big") + _ssh_str(pub_blob) + _ssh_str(priv)
        body = base64.b64encode(blob).decode()
        rows = [body[i : i + 70] for i in range(0, len(body), 70)]
        return (
            "-----BEGIN OPENSSH PRIVATE KEY-----\n"
            + "\n".join(rows)
            + "\n-----END OPENSSH PRIVATE KEY-----"
        )

    def h16_private_jwk(self) -> str:
        key = self.h16_util_ec()
        nums = key.private_numbers()
        jwk = {
            "kty": "EC",
            "crv": "P-256",
            "kid": self.s(12, LOWNUM),
            "use": "sig",
            "x": self.h16_util_b64u_int(nums.public_numbers.x, 32),
            "y": self.h16_util_b64u_int(nums.public_numbers.y, 32),
            "d": self.h16_util_b64u_int(nums.private_value, 32),
        }
        return json.dumps(jwk, separators=(",", ":"))

    def h16_sa_private_key(self) -> str:
        return self.h16_pkcs8_rsa().replace("\n", "\\n") + "\\n"

    def h16_pkcs8_rsa(self) -> str:
        return (
            self.h16_util_rsa()
            .private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            .decode()
            .strip()
        )

    def h16_b64_pem_key(self) -> str:
        return base64.b64encode((self.h16_ec_key() + "\n").encode()).decode()

    # ------------------------------------------------------------------ negatives: references
    def h16_py_ref(self) -> str:
        return self.pick(
            [
                'os.environ["LIS_DB_PASSWORD"]',
                'os.getenv("FHIR_CLIENT_SECRET")',
                "settings.PACS_PASSWORD",
                'keyring.get_password("brenvik", "lims_app")',
                'secret_client.get_secret("mirth-db-password").value',
                'cfg["lims"]["password"]',
            ]
        )

    def h16_java_ref(self) -> str:
        return self.pick(
            [
                "${FHIR_CLIENT_SECRET}",
                "${vault.epj.password}",
                "${LIS_DB_PASSWORD:}",
                "${azure.keyvault.secret.pacs-pw}",
                "#{environment['MIRTH_DB_PASSWORD']}",
            ]
        )

    def h16_cs_ref(self) -> str:
        return self.pick(
            [
                'Environment.GetEnvironmentVariable("EPJ_DB_PASSWORD")',
                'configuration["Fhir:ClientSecret"]',
                '(await secretClient.GetSecretAsync("helseid-jwk")).Value.Value',
                "_options.Value.Password",
            ]
        )

    def h16_js_ref(self) -> str:
        return self.pick(
            [
                "process.env.SENDGRID_API_KEY",
                "process.env['TWILIO_AUTH_TOKEN'] ?? ''",
                "config.get('fhir.clientSecret')",
                "Config.PUSH_SERVER_KEY",
                "secrets.smsAuthToken",
            ]
        )

    def h16_go_ref(self) -> str:
        return self.pick(
            [
                'os.Getenv("ORTHANC_PASSWORD")',
                "cfg.DICOMweb.Token",
                'viper.GetString("lis.password")',
                'mustEnv("HL7_BRIDGE_SECRET")',
            ]
        )

    def h16_sh_ref(self) -> str:
        return self.pick(
            [
                '"$LIMS_DB_PASSWORD"',
                '"${SMB_SCAN_PASSWORD:?not set}"',
                '"$(cat /run/secrets/pacs_password)"',
                '"$(vault kv get -field=password secret/lis/db)"',
                '"$(az keyvault secret show --vault-name kv-bvk-prod -n lis-db -o tsv --query value)"',
            ]
        )

    def h16_ci_ref(self) -> str:
        return self.pick(
            [
                "${{ secrets.NEXUS_PASSWORD }}",
                "$(ACR_PASSWORD)",
                "$CI_REGISTRY_PASSWORD",
                "${NPM_TOKEN}",
                "${{ secrets.AZURE_CLIENT_SECRET }}",
                "$HARBOR_ROBOT_SECRET",
            ]
        )

    def h16_r_ref(self) -> str:
        return self.pick(
            [
                'Sys.getenv("REDCAP_API_TOKEN")',
                'keyring::key_get("bri-omop", "analyst")',
                'rstudioapi::askForPassword("Database password")',
                'config::get("db")$password',
            ]
        )

    def h16_tpl_ref(self) -> str:
        return self.pick(
            [
                "{{ .Values.mirth.db.password }}",
                "{{ vault_lis_db_password }}",
                "{{ lookup('env', 'PACS_PW') }}",
                "${var.sql_admin_password}",
                "{{ .Env.ORTHANC_PASSWORD }}",
                "<%= @bind_password %>",
                '${file("/run/secrets/smtp")}',
            ]
        )

    def h16_kv_ref(self) -> str:
        return self.pick(
            [
                "@Microsoft.KeyVault(SecretUri=https://kv-bvk-prod.vault.azure.net/secrets/lis-db-password/)",
                "@Microsoft.KeyVault(VaultName=kv-bvk-prod;SecretName=fhir-client-secret)",
                "vault:secret/data/epj/mirth#db_password",
                "akv://kv-bri-research/minio-secret-key",
                "op://Brenvik IT/PACS service/password",
            ]
        )

    def h16_placeholder(self) -> str:
        return self.pick(
            [
                "<passord>",
                "<salasana>",
                "<parool>",
                "ENDRE_MEG",
                "VAIHDA_TÄMÄ",
                "MUUDA_SEDA",
                "<your-password>",
                "xxxxxxxx",
                "********",
                "REPLACE_ME",
                "<fyll inn>",
                "TBD",
                "your-token-here",
            ]
        )

    def h16_redacted(self) -> str:
        return self.pick(
            [
                "[REDACTED]",
                "***",
                "<fjernet>",
                "[poistettu]",
                "[eemaldatud]",
                "••••••••",
                "(sladdet)",
                "<hidden>",
            ]
        )

    def h16_role_word(self) -> str:
        return self.pick(["password", "secret", "passord", "salasana", "parool", "token"])

    def h16_secret_name(self) -> str:
        return self.pick(
            [
                "mirth-db-credentials",
                "lis-db-password",
                "orthanc-admin",
                "fhir-client-secret",
                "minio-creds",
                "helseid-signing-key",
            ]
        )

    # ------------------------------------------------------------------ negatives: hashes, encrypted
    def h16_bcrypt(self) -> str:
        return f"$2{self.pick(['a', 'b', 'y'])}$12${self.s(53, CRYPT64)}"

    def h16_argon2(self) -> str:
        salt = self.h16_util_b64(16, pad=False)
        digest = self.h16_util_b64(32, pad=False)
        return f"argon2:$argon2id$v=19$m=10240,t=10,p=8${salt}${digest}"

    def h16_pg_hash(self) -> str:
        if self.rng.randrange(2):
            return "md5" + self.s(32, HEX)
        return (
            f"SCRAM-SHA-256$4096:{self.h16_util_b64(16)}${self.h16_util_b64(32)}"
            f":{self.h16_util_b64(32)}"
        )

    def h16_ssha(self) -> str:
        return "{SSHA}" + base64.b64encode(self.rng.randbytes(28)).decode()

    def h16_mssql_hash(self) -> str:
        return "0x0200" + self.s(136, HEXU)

    def h16_pbkdf2(self) -> str:
        return f"pbkdf2_sha256$870000${self.s(22, ALNUM)}${self.h16_util_b64(32)}"

    def h16_sha512crypt(self) -> str:
        return f"$6${self.s(16, CRYPT64)}${self.s(86, CRYPT64)}"

    def h16_ansible_vault(self) -> str:
        body = self.s(80 * 5, HEX)
        rows = [body[i : i + 80] for i in range(0, len(body), 80)]
        return "$ANSIBLE_VAULT;1.1;AES256\n" + "\n".join(rows)

    def h16_sops(self) -> str:
        data = self.h16_util_b64(self.rng.randrange(12, 40))
        return (
            f"ENC[AES256_GCM,data:{data},iv:{self.h16_util_b64(32)},"
            f"tag:{self.h16_util_b64(16)},type:str]"
        )

    def h16_jasypt(self) -> str:
        return f"ENC({self.h16_util_b64(self.rng.choice([32, 48]))})"

    def h16_sealed(self) -> str:
        return "AgB" + self.h16_util_b64(400)

    def h16_dpapi(self) -> str:
        return "AQAAANCMnd8BFdERjHoAwE/Cl+sBAAAA" + self.h16_util_b64(180)

    def h16_encrypted_key(self) -> str:
        oid = bytes.fromhex  # shorthand
        salt = self.rng.randbytes(16)
        iv = self.rng.randbytes(16)
        pbkdf2 = _der(
            0x30,
            _der(0x06, oid("2a864886f70d01050c"))
            + _der(
                0x30,
                _der(0x04, salt)
                + _der(0x02, (2048).to_bytes(2, "big"))
                + _der(0x30, _der(0x06, oid("2a864886f70d0209")) + b"\x05\x00"),
            ),
        )
        cipher = _der(0x30, _der(0x06, oid("60864801650304012a")) + _der(0x04, iv))
        algo = _der(0x30, _der(0x06, oid("2a864886f70d01050d")) + _der(0x30, pbkdf2 + cipher))
        der = _der(0x30, algo + _der(0x04, self.rng.randbytes(1216)))
        return self.h16_util_armor("ENCRYPTED PRIVATE KEY", der)

    # ------------------------------------------------------------------ negatives: public material
    def h16_cert(self) -> str:
        key = self.h16_util_ec()
        cn = self.pick(
            [
                "fhir.brenvik-uh.no",
                "xroad-ss1.brenvik-uh.ee",
                "mirth02.int.brenvik-uh.no",
                "kanta-gw.brenvik-uh.fi",
                "pacs.brenvik-uh.no",
            ]
        )
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, self.pick(["NO", "FI", "EE"])),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Brenvik University Hospital"),
                x509.NameAttribute(NameOID.COMMON_NAME, cn),
            ]
        )
        start = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(
            days=self.rng.randrange(300)
        )
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(self.rng.getrandbits(120) | 1)
            .not_valid_before(start)
            .not_valid_after(start + datetime.timedelta(days=730))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]), critical=False)
            .sign(key, hashes.SHA256(), ecdsa_deterministic=True)
        )
        return cert.public_bytes(serialization.Encoding.PEM).decode().strip()

    def h16_public_pem(self) -> str:
        key = self.h16_util_ec()
        return (
            key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
            .strip()
        )

    def h16_ssh_pub(self) -> str:
        key = self.h16_util_ed25519().public_key()
        line = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        return line.decode() + f" {self.pick(self.users)}@{self.pick(['hpc-login1', 'jump01'])}"

    def h16_public_jwk(self) -> str:
        nums = self.h16_util_ec().private_numbers().public_numbers
        jwk = {
            "kty": "EC",
            "crv": "P-256",
            "kid": self.s(12, LOWNUM),
            "use": "sig",
            "x": self.h16_util_b64u_int(nums.x, 32),
            "y": self.h16_util_b64u_int(nums.y, 32),
        }
        return json.dumps(jwk, separators=(",", ":"))

    def h16_thumbprint(self) -> str:
        return self.s(40, HEXU)

    def h16_fingerprint(self) -> str:
        return "SHA256:" + self.h16_util_b64(32, pad=False)

    # ------------------------------------------------------------------ negatives: identifiers
    def h16_uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def h16_git_sha(self) -> str:
        return self.s(40, HEX)

    def h16_image_digest(self) -> str:
        return "sha256:" + self.s(64, HEX)

    def h16_sri(self) -> str:
        return "sha512-" + self.h16_util_b64(64)

    def h16_dicom_uid(self) -> str:
        return "1.2.826.0.1.3680043.10." + ".".join(
            str(self.rng.randrange(1, 10 ** self.rng.randrange(3, 9))) for _ in range(4)
        )

    def h16_hl7_id(self) -> str:
        return self.pick(["MSG", "BVK", "LIS"]) + self.s(14, DIGITS)

    def h16_specimen_id(self) -> str:
        return f"BRI-{self.s(2, string.ascii_uppercase)}{self.s(8, DIGITS)}-{self.s(2, DIGITS)}"

    def h16_twilio_sid(self) -> str:
        return "AC" + self.s(32, HEX)

    def h16_hex_checksum(self) -> str:
        return self.s(64, HEX)

    # ------------------------------------------------------------------ negatives: text and examples
    def h16_i18n_nb(self) -> str:
        return self.pick(
            [
                "Feil brukernavn eller passord",
                "Passordet må ha minst 12 tegn",
                "Passordene er ikke like",
                "Glemt passord?",
                "Passordet ditt er utløpt",
            ]
        )

    def h16_i18n_fi(self) -> str:
        return self.pick(
            [
                "Väärä käyttäjätunnus tai salasana",
                "Salasanan on oltava vähintään 12 merkkiä",
                "Salasanat eivät täsmää",
                "Unohditko salasanasi?",
            ]
        )

    def h16_i18n_et(self) -> str:
        return self.pick(
            [
                "Vale kasutajanimi või parool",
                "Parool peab olema vähemalt 12 tähemärki",
                "Paroolid ei kattu",
                "Unustasid parooli?",
            ]
        )

    def h16_pw_policy(self) -> str:
        return self.pick(
            ["minst 12 tegn", "minst 14 tegn", "minst 16 tegn", "minst 12 tegn og byttes hvert år"]
        )

    def h16_pw_policy_fi(self) -> str:
        return self.pick(["vähintään 12 merkkiä", "vähintään 14 merkkiä", "vähintään 16 merkkiä"])

    def h16_aws_example(self) -> str:
        return self.pick(
            [
                "aws_access_key_id = AKIAIOSFODNN7EXAMPLE\n"
                "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "aws_access_key_id = AKIAI44QH8DHBEXAMPLE\n"
                "aws_secret_access_key = je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY",
            ]
        )

    def h16_doc_webhook(self) -> str:
        return self.pick(
            [
                "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
                "https://example.webhook.office.com/webhookb2/<group>@<tenant>/IncomingWebhook/<id>/<owner>",
                "https://hooks.slack.com/services/TXXXXXXXX/BXXXXXXXX/<secret>",
            ]
        )

    def h16_fake_test(self) -> str:
        return self.pick(
            [
                "fake-token-for-tests",
                "dummy-secret-not-real",
                "test-only-not-a-secret",
                "not-a-real-password",
                "falsk-passord-kun-test",
                "testi-salasana-ei-oikea",
                "fake_" + "0" * 24,
            ]
        )

    def h16_b64_username(self) -> str:
        return base64.b64encode(self.pick([*self.users, "postgres", "sa"]).encode()).decode()

    # ------------------------------------------------------------------ more generators
    def h16_redcap(self) -> str:
        return self.s(32, HEXU)

    def h16_gpp_cpassword(self) -> str:
        from cryptography.hazmat.primitives import padding
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        key = bytes.fromhex("4e9906e8fcb66cc9faf49310620ffee8f496e806cc057990209b09a433b66c1b")
        padder = padding.PKCS7(128).padder()
        data = padder.update(self.h16_pw().encode("utf-16-le")) + padder.finalize()
        enc = Cipher(algorithms.AES(key), modes.CBC(bytes(16))).encryptor()
        return base64.b64encode(enc.update(data) + enc.finalize()).decode().rstrip("=")

    def h16_php_ref(self) -> str:
        return self.pick(
            [
                "env('DB_PASSWORD')",
                "getenv('LIMS_DB_PASSWORD')",
                "$_ENV['REDIS_PASSWORD'] ?? null",
                "config('services.lims.secret')",
            ]
        )

    def h16_nf_ref(self) -> str:
        return self.pick(
            [
                "secrets.TOWER_ACCESS_TOKEN",
                "System.getenv('TOWER_ACCESS_TOKEN')",
                "params.tower_token",
                "secrets.MINIO_SECRET_KEY",
            ]
        )

    def h16_gradle_ref(self) -> str:
        return self.pick(
            [
                'System.getenv("ANDROID_KEYSTORE_PASSWORD")',
                'keystoreProperties["storePassword"] as String',
                'providers.gradleProperty("bvkKeyPassword").get()',
                'findProperty("signing.password") as String? ?: ""',
            ]
        )

    def h16_ps_ref(self) -> str:
        return self.pick(
            [
                "(Read-Host -AsSecureString 'Nytt passord')",
                "(Get-Secret -Name CitrixAdmin -Vault BvkSecretStore)",
                "$env:SVC_PRINT_PASSWORD",
                "(Get-AzKeyVaultSecret -VaultName kv-bvk-prod -Name ad-join).SecretValue",
            ]
        )

    def h16_batch_ref(self) -> str:
        return self.pick(["%PRINT_SVC_PW%", "%~1", "!SMB_PASS!", "%SCAN_PASSWORD%"])

    def h16_env_braced(self) -> str:
        return self.pick(
            [
                "${ORTHANC_ADMIN_PASSWORD}",
                "${MIRTH_DB_PASSWORD:?missing}",
                "${PG_PASSWORD}",
                "${LIS_PASSWORD:-}",
                "${DICOMWEB_TOKEN}",
            ]
        )

    def h16_forti_enc(self) -> str:
        return "ENC " + self.h16_util_b64(self.rng.choice([72, 96, 120]))


VALUES = Heldout16Values


def _t(path: str, kind: str, positive: bool, text: str) -> evalset.Template:
    return (path, text.removeprefix("\n"), kind, positive)


TEMPLATES: list[evalset.Template] = []

# ---------------------------------------------------------------------------------------------
# EHR integration layer: Mirth, FHIR gateway, HelseID, Kanta, X-Road, HL7 bridge
# ---------------------------------------------------------------------------------------------
TEMPLATES += [
    _t(
        "integrations/mirth/conf/mirth.properties",
        "h16_pw",
        True,
        r"""
# Mirth Connect 4.5 - mirth02.int.brenvik-uh.no
# Endret av IT-integrasjon 2024-09-12 (INC0048812)
http.port = 8080
https.port = 8443
password.minlength = 0
keystore.path = ${dir.appdata}/keystore.jks
keystore.storepass = {V}
keystore.keypass = {V2}
keystore.type = JCEKS
database = postgres
database.url = jdbc:postgresql://epj-db01.brenvik-uh.no:5432/mirthdb
database.username = mirth
database.password = {V3}
database.max-connections = 20
server.includecustomlib = false
""",
    ),
    _t(
        "fhir-gateway/src/main/resources/application-prod.yml",
        "h16_pw",
        True,
        r"""
spring:
  application:
    name: bvk-fhir-gateway
  datasource:
    url: jdbc:postgresql://fhir-db.brenvik-uh.no:5432/hapi
    username: hapi_app
    password: {V}
    hikari:
      maximum-pool-size: 30
  rabbitmq:
    host: mq01.int.brenvik-uh.no
    username: fhir-events
    password: "{V2}"
hapi:
  fhir:
    fhir_version: R4
    server_address: https://fhir.brenvik-uh.no/fhir
    allow_external_references: true
""",
    ),
    _t(
        "fhir-gateway/src/main/resources/application-test.yml",
        "h16_java_ref",
        False,
        r"""
spring:
  datasource:
    url: jdbc:postgresql://fhir-db-test.brenvik-uh.no:5432/hapi
    username: hapi_app
    password: {V}
  rabbitmq:
    host: mq-test.int.brenvik-uh.no
    username: fhir-events
    password: {V2}
management:
  endpoints:
    web:
      exposure:
        include: health,info,prometheus
""",
    ),
    _t(
        "fhir-gateway/src/main/resources/application-staging.yml",
        "h16_jasypt",
        False,
        r"""
# Verdiene er kryptert med jasypt (PBEWITHHMACSHA512ANDAES_256).
# Nøkkelen settes som JASYPT_ENCRYPTOR_PASSWORD i Key Vault-referansen på poden.
jasypt:
  encryptor:
    algorithm: PBEWITHHMACSHA512ANDAES_256
    password: ${JASYPT_ENCRYPTOR_PASSWORD}
spring:
  datasource:
    url: jdbc:postgresql://fhir-db-stg.brenvik-uh.no:5432/hapi
    username: hapi_app
    password: {V}
  mail:
    host: smtp.brenvik-uh.no
    username: fhir-noreply
    password: {V2}
""",
    ),
    _t(
        "fhir-gateway/src/test/java/no/brenvik/fhir/smart/BackendServicesClientIT.java",
        "h16_private_jwk",
        True,
        r'''
package no.brenvik.fhir.smart;

import com.nimbusds.jose.jwk.JWK;
import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Runs against the staging authorization server (auth-stg.brenvik-uh.no).
 * Client id bvk-lab-export is registered there with this key.
 */
class BackendServicesClientIT {

    private static final String STAGING_JWK = """
        {V}
        """;

    @Test
    void obtainsSystemScopedToken() throws Exception {
        JWK key = JWK.parse(STAGING_JWK.strip());
        BackendServicesClient client = new BackendServicesClient(
            "https://auth-stg.brenvik-uh.no/oauth2/token", "bvk-lab-export", key);
        String token = client.fetchToken("system/Observation.read");
        assertThat(token).isNotBlank();
    }
}
''',
    ),
    _t(
        "fhir-gateway/src/main/resources/static/.well-known/jwks.json",
        "h16_public_jwk",
        False,
        r"""
{
  "keys": [
    {V},
    {V2}
  ]
}
""",
    ),
    _t(
        "helseid-client/src/Brenvik.HelseId/appsettings.Production.json",
        "h16_private_jwk",
        True,
        r"""
{
  "Logging": { "LogLevel": { "Default": "Warning" } },
  "HelseId": {
    "Authority": "https://helseid-sts.nhn.no",
    "ClientId": "b1e0c9a4-brenvik-epj-integrasjon",
    "Scopes": [ "nhn:kjernejournal/api", "nhn:hdir:rest-api" ],
    "SigningKey": {V},
    "TokenLifetimeSeconds": 60
  },
  "Kjernejournal": { "BaseUrl": "https://api.kjernejournal.no" }
}
""",
    ),
    _t(
        "helseid-client/src/Brenvik.HelseId/appsettings.json",
        "h16_kv_ref",
        False,
        r"""
{
  "HelseId": {
    "Authority": "https://helseid-sts.test.nhn.no",
    "ClientId": "b1e0c9a4-brenvik-epj-integrasjon-test",
    "SigningKeySecret": "{V}",
    "ClientSecret": "{V2}"
  },
  "AllowedHosts": "*"
}
""",
    ),
    _t(
        "epj-adapter/src/Brenvik.EpjAdapter/Program.cs",
        "h16_pw",
        True,
        r"""
using Brenvik.EpjAdapter.Services;
using Microsoft.Data.SqlClient;

var builder = WebApplication.CreateBuilder(args);

// TODO: flytt til Key Vault før go-live (jf. sak 2291)
const string EpjConnection =
    "Server=epj-db01.brenvik-uh.no,1433;Database=EPJ_INTEGRASJON;User Id=epj_integrasjon;Password={V};TrustServerCertificate=True";

builder.Services.AddSingleton(_ => new SqlConnection(EpjConnection));
builder.Services.AddScoped<IPatientLookup, PatientLookup>();
builder.Services.AddHttpClient("kanta", c => c.BaseAddress = new Uri("https://kanta-gw.brenvik-uh.fi/"));

var app = builder.Build();
app.MapGet("/health", () => Results.Ok("ok"));
app.MapPatientEndpoints();
app.Run();
""",
    ),
    _t(
        "epj-adapter/src/Brenvik.EpjAdapter/Services/EpjDbFactory.cs",
        "h16_cs_ref",
        False,
        r"""
using Microsoft.Data.SqlClient;
using Microsoft.Extensions.Options;

namespace Brenvik.EpjAdapter.Services;

public sealed class EpjDbFactory(IOptions<EpjDbOptions> options, IConfiguration configuration)
{
    private readonly IOptions<EpjDbOptions> _options = options;

    public SqlConnection Create()
    {
        var password = {V};
        var csb = new SqlConnectionStringBuilder
        {
            DataSource = _options.Value.Server,
            InitialCatalog = "EPJ_INTEGRASJON",
            UserID = _options.Value.User,
            Password = password,
            Encrypt = true,
        };
        return new SqlConnection(csb.ConnectionString);
    }
}
""",
    ),
    _t(
        "hl7-bridge/cmd/bridge/main.go",
        "h16_hmac_key",
        True,
        r"""
package main

import (
	"log"
	"os"

	"git.brenvik-uh.no/integrasjon/hl7-bridge/internal/mllp"
)

func getenv(key, fallback string) string {
	if v, ok := os.LookupEnv(key); ok {
		return v
	}
	return fallback
}

func main() {
	addr := getenv("MLLP_LISTEN", ":2575")
	// shared secret used to sign the forwarded messages to the FHIR gateway
	secret := getenv("HL7_BRIDGE_SECRET", "{V}")
	srv := mllp.NewServer(addr, mllp.WithSigner([]byte(secret)))
	log.Printf("hl7-bridge listening on %s", addr)
	log.Fatal(srv.ListenAndServe())
}
""",
    ),
    _t(
        "hl7-bridge/internal/config/config.go",
        "h16_go_ref",
        False,
        r"""
package config

import (
	"os"

	"github.com/spf13/viper"
)

type Config struct {
	ListenAddr   string
	FhirEndpoint string
	SignSecret   string
	LisPassword  string
}

func Load() Config {
	_ = os.Getenv
	viper.AutomaticEnv()
	return Config{
		ListenAddr:   viper.GetString("mllp.listen"),
		FhirEndpoint: viper.GetString("fhir.endpoint"),
		SignSecret:   {V},
		LisPassword:  {V2},
	}
}
""",
    ),
    _t(
        "hl7-bridge/testdata/adt_a01_ok.hl7",
        "h16_hl7_id",
        False,
        r"""
MSH|^~\&|DIPS|BVK|HL7BRIDGE|BVK|20241103121501||ADT^A01^ADT_A01|{V}|P|2.5.1|||AL|NE|NOR|UNICODE UTF-8
EVN|A01|20241103121500
PID|1||12345678901^^^NO-FNR^FNR||Testesen^Kari^^^^^L||19800101|F|||Sjøveien 1^^Brenvik^^9990^NOR
PV1|1|I|MED2^204^1^BVK||||12345^Lege^Lise|||MED||||||||INP|{V2}
MSA|AA|{V}
""",
    ),
    _t(
        "integrations/mirth/channels/LIS_ORU_Inbound.xml",
        "h16_pw",
        True,
        r"""
<channel version="4.5.0">
  <id>5f0c1a22-9d3b-4c0e-8a11-2c7e0b9f8e31</id>
  <name>LIS_ORU_Inbound</name>
  <sourceConnector version="4.5.0">
    <properties class="com.mirth.connect.connectors.tcp.TcpReceiverProperties">
      <listenerConnectorProperties><host>0.0.0.0</host><port>6661</port></listenerConnectorProperties>
    </properties>
  </sourceConnector>
  <destinationConnectors>
    <connector version="4.5.0">
      <name>Write to LIS staging</name>
      <properties class="com.mirth.connect.connectors.jdbc.DatabaseDispatcherProperties">
        <driver>org.postgresql.Driver</driver>
        <url>jdbc:postgresql://lis-prod.brenvik-uh.no:5432/lis_stage</url>
        <username>mirth_lis</username>
        <password>{V}</password>
        <query>INSERT INTO oru_inbox (msg_id, payload) VALUES (${msgId}, ${message.rawData})</query>
      </properties>
    </connector>
  </destinationConnectors>
</channel>
""",
    ),
    _t(
        "integrations/mirth/channels/ADT_Outbound.xml",
        "h16_env_braced",
        False,
        r"""
<channel version="4.5.0">
  <name>ADT_Outbound</name>
  <destinationConnectors>
    <connector version="4.5.0">
      <name>PACS worklist DB</name>
      <properties class="com.mirth.connect.connectors.jdbc.DatabaseDispatcherProperties">
        <driver>com.microsoft.sqlserver.jdbc.SQLServerDriver</driver>
        <url>jdbc:sqlserver://bvk-pacs01.brenvik-uh.no:1433;databaseName=MWL</url>
        <username>mwl_writer</username>
        <!-- resolved from the configuration map at deploy time -->
        <password>{V}</password>
      </properties>
    </connector>
  </destinationConnectors>
</channel>
""",
    ),
    _t(
        "fhir-subscriptions/src/notify.ts",
        "h16_teams_webhook",
        True,
        r"""
import type { Bundle, Subscription } from 'fhir/r4';

// Kanal "Integrasjon - varsler" i Teams (eier: seksjon for pasientnær IKT)
const TEAMS_HOOK = '{V}';

export async function notifyFailure(sub: Subscription, bundle: Bundle, err: Error): Promise<void> {
  const body = {
    type: 'message',
    text: `Subscription ${sub.id} feilet: ${err.message} (${bundle.entry?.length ?? 0} ressurser)`,
  };
  const res = await fetch(TEAMS_HOOK, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (!res.ok) {
    console.warn('teams webhook returned', res.status);
  }
}
""",
    ),
    _t(
        "fhir-subscriptions/src/config.ts",
        "h16_js_ref",
        False,
        r"""
export interface AppConfig {
  fhirBase: string;
  sendgridKey: string;
  smsToken: string;
}

export const config: AppConfig = {
  fhirBase: process.env.FHIR_BASE ?? 'https://fhir.brenvik-uh.no/fhir',
  sendgridKey: {V},
  smsToken: {V2},
};
""",
    ),
    _t(
        "kanta-connector/config/kanta.properties",
        "h16_pw",
        True,
        r"""
# Kanta-palvelut / Oulun toimipiste
# Yhteyshenkilö: integraatiotiimi, ks. wiki "Kanta-liittymä"
kanta.endpoint=https://kanta-gw.brenvik-uh.fi/kvarkki/v1
kanta.organisation.oid=1.2.246.10.99887766.10.0
kanta.keystore.path=/etc/kanta/brenvik-oulu.p12
kanta.keystore.password={V}
kanta.key.alias=brenvik-oulu-palvelinvarmenne
kanta.truststore.path=/etc/kanta/vrk-ca.jks
# arkistotietokanta
archive.jdbc.url=jdbc:oracle:thin:@kanta-arkisto.brenvik-uh.fi:1521/KANTA
archive.jdbc.user=KANTA_ARK
archive.jdbc.password={V2}
""",
    ),
    _t(
        "kanta-connector/certs/kanta-gw.brenvik-uh.fi.pem",
        "h16_cert",
        False,
        r"""
# Palvelinvarmenne kanta-gw.brenvik-uh.fi (julkinen osa, saa jakaa)
# Uusittu 2025, voimassa 2 vuotta
{V}
""",
    ),
    _t(
        "xroad/securityserver/TALITUS.et.md",
        "h16_pin",
        True,
        r"""
# X-Tee turvaserveri xroad-ss1.brenvik-uh.ee

## Taaskäivitus pärast hooldust

1. Logi sisse: `ssh admin@xroad-ss1.brenvik-uh.ee`
2. Kontrolli teenuseid: `systemctl status xroad-signer xroad-proxy`
3. Ava haldusliides https://xroad-ss1.brenvik-uh.ee:4000
4. Keystore -> "softToken-0" -> Log in
   - Tarkvaralise tokeni PIN: `{V}`
5. Kontrolli, et allkirjastamisvõti on aktiivne (roheline).

Kui PIN lukustub, helista TEHIKu toele.
""",
    ),
    _t(
        "xroad/securityserver/ANKUR.et.md",
        "h16_thumbprint",
        False,
        r"""
# Konfiguratsiooniankur

Keskserveri ankur laaditi 2025-02-14 (EE instants).

| Väli | Väärtus |
| --- | --- |
| Instants | EE |
| Ankru räsi (SHA-1) | `{V}` |
| Allkirjastamissertifikaadi sõrmejälg | `{V2}` |

Räsi kontrolliti telefoni teel RIA tugiteenusega.
""",
    ),
    _t(
        "fhir-gateway/k8s/secret-db.yaml",
        "h16_b64_pw",
        True,
        r"""
apiVersion: v1
kind: Secret
metadata:
  name: fhir-gateway-db
  namespace: integrasjon
  labels:
    app.kubernetes.io/name: bvk-fhir-gateway
type: Opaque
data:
  username: aGFwaV9hcHA=
  password: {V}
  rabbitmq-password: {V2}
""",
    ),
    _t(
        "fhir-gateway/k8s/secret-db-usernames.yaml",
        "h16_b64_username",
        False,
        r"""
# Passwords come from the ExternalSecret (kv-bvk-prod); only usernames live here.
apiVersion: v1
kind: Secret
metadata:
  name: fhir-gateway-db-users
  namespace: integrasjon
type: Opaque
data:
  username: {V}
  rabbitmq-username: {V2}
""",
    ),
    _t(
        "fhir-gateway/k8s/sealedsecret-db.yaml",
        "h16_sealed",
        False,
        r"""
apiVersion: bitnami.com/v1alpha1
kind: SealedSecret
metadata:
  name: fhir-gateway-db
  namespace: integrasjon
spec:
  encryptedData:
    password: {V}
    rabbitmq-password: {V2}
  template:
    metadata:
      name: fhir-gateway-db
""",
    ),
]

# ---------------------------------------------------------------------------------------------
# PACS, lab systems and the medical-device network
# ---------------------------------------------------------------------------------------------
TEMPLATES += [
    _t(
        "pacs/orthanc/orthanc.json",
        "h16_vendor_pw",
        True,
        r"""
{
  "Name": "BVK-ORTHANC-ROUTER",
  "StorageDirectory": "/var/lib/orthanc/db",
  "DicomAet": "BVKROUTER",
  "DicomPort": 4242,
  "HttpPort": 8042,
  "RemoteAccessAllowed": true,
  "AuthenticationEnabled": true,
  "RegisteredUsers": {
    "orthanc": "{V}",
    "radiologi": "{V2}"
  },
  "DicomModalities": {
    "sectra": [ "SECTRA_PACS", "bvk-pacs01.brenvik-uh.no", 104 ],
    "ct-oulu": [ "CT_OULU1", "oulu-kuvantaminen.brenvik-uh.fi", 104 ]
  }
}
""",
    ),
    _t(
        "pacs/orthanc/orthanc.test.json",
        "h16_env_braced",
        False,
        r"""
{
  "Name": "BVK-ORTHANC-TEST",
  "DicomAet": "BVKTEST",
  "AuthenticationEnabled": true,
  "RegisteredUsers": {
    "orthanc": "{V}",
    "radiologi": "{V2}"
  },
  "PostgreSQL": {
    "EnableIndex": true,
    "Host": "pacs-db-test.brenvik-uh.no",
    "Username": "orthanc",
    "Password": "{V3}"
  }
}
""",
    ),
    _t(
        "pacs/dicomweb-gw/config/gateway.yaml",
        "h16_jwt",
        True,
        r"""
listen: 0.0.0.0:8081
upstream:
  qido: https://bvk-pacs01.brenvik-uh.no/dicomweb
  wado: https://bvk-pacs01.brenvik-uh.no/dicomweb
  # long-lived service token issued by the gateway for the AI triage pilot (no exp claim)
  bearer_token: {V}
viewer:
  allowed_origins:
    - https://ohif.brenvik-uh.no
cache:
  dir: /var/cache/dicomweb
  max_gb: 40
""",
    ),
    _t(
        "pacs/scripts/find_prior_study.py",
        "h16_dicom_uid",
        False,
        r"""
#!/usr/bin/env python3
# Hent tidligere undersøkelse for sammenligning (brukes av mammografi-screening).
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

STUDY_UID = "{V}"
SERIES_UID = "{V2}"

ae = AE(ae_title="BVKSCREEN")
ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
assoc = ae.associate("bvk-pacs01.brenvik-uh.no", 104, ae_title="SECTRA_PACS")
query = Dataset()
query.QueryRetrieveLevel = "SERIES"
query.StudyInstanceUID = STUDY_UID
query.SeriesInstanceUID = SERIES_UID
if assoc.is_established:
    for status, ident in assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind):
        print(status.Status, ident)
    assoc.release()
""",
    ),
    _t(
        "pacs/scripts/push_to_archive.sh",
        "h16_pw",
        True,
        r"""
#!/usr/bin/env bash
# Flytter ferdige studier fra ruteren til langtidsarkivet hver natt (cron 02:15)
set -euo pipefail
ORTHANC=https://bvk-orthanc.brenvik-uh.no:8042
since=$(date -d 'yesterday' +%Y%m%d)
ids=$(curl -fsS -u radiologi:{V} "$ORTHANC/tools/find" \
  -d "{\"Level\":\"Study\",\"Query\":{\"StudyDate\":\"$since-\"}}" | jq -r '.[]')
for id in $ids; do
  curl -fsS -u radiologi:{V} -X POST "$ORTHANC/modalities/sectra/store" -d "$id" >/dev/null
  echo "sendt $id"
done
""",
    ),
    _t(
        "lab/lis-interface/odbc.ini",
        "h16_pw",
        True,
        r"""
[LIS_PROD]
Driver = ODBC Driver 18 for SQL Server
Server = lis-prod.brenvik-uh.no,1433
Database = LABSYS
UID = labsys
PWD = {V}
Encrypt = yes
TrustServerCertificate = yes

[LIS_RAPPORT]
Driver = ODBC Driver 18 for SQL Server
Server = lis-rapport.brenvik-uh.no,1433
Database = LABSYS_DW
UID = rapport_ro
PWD = {V2}
""",
    ),
    _t(
        "lab/lis-interface/sql/logins.sql",
        "h16_mssql_hash",
        False,
        r"""
-- Migrering av pålogginger fra gammel LIS-server (sp_help_revlogin-utskrift)
-- Kjøres på lis-prod etter restore.
CREATE LOGIN [labsys] WITH PASSWORD = {V} HASHED,
    SID = 0x9A1F0C77E2B54C45A1D3B1F2AC0E7711, DEFAULT_DATABASE = [LABSYS], CHECK_POLICY = ON;
CREATE LOGIN [rapport_ro] WITH PASSWORD = {V2} HASHED,
    SID = 0x4B2D7E90A14F4E0FB1E56C0D9A3F2B18, DEFAULT_DATABASE = [LABSYS_DW], CHECK_POLICY = ON;
GO
""",
    ),
    _t(
        "lab/analyzers/middleware/cobas-link.ini",
        "h16_vendor_pw",
        True,
        r"""
; Analysator-middleware, Klinisk kjemi Brenvik
; Serviceinnlogging for leverandøren (endres ikke uten avtale med leverandør)
[Host]
Address=lis-prod.brenvik-uh.no
Port=4010
Protocol=ASTM

[ServiceAccount]
User=service
Password={V}

[Instruments]
c503_1=10.42.8.21
c503_2=10.42.8.22
""",
    ),
    _t(
        "lab/analyzers/README.md",
        "h16_placeholder",
        False,
        r"""
# Analysatorer og middleware

Konfigurasjonen under `middleware/` er mal for nye instrumenter. Fyll inn serviceinnlogging
fra leverandørens overleveringsdokument; ikke sjekk inn ekte verdier.

```ini
[ServiceAccount]
User=service
Password={V}
```

For LIS-siden brukes `UID=labsys` og `PWD={V2}` i `odbc.ini` (se Key Vault `lis-db-password`).
""",
    ),
    _t(
        "devices/infusion-gateway/snmpd.conf",
        "h16_snmp_community",
        True,
        r"""
# snmpd for pumpegateway pgw01 (medisinsk-teknisk nett, VLAN 420)
sysLocation    Brenvik sykehus, bygg C, teknisk rom 2
sysContact     medtek-drift@brenvik-uh.no
agentaddress   udp:10.42.0.5:161
rocommunity    {V} 10.42.100.0/24
rwcommunity    {V2} 10.42.100.10
createUser     nmsv3 SHA "{V3}" AES "{V3}"
rouser         nmsv3 priv
""",
    ),
    _t(
        "devices/infusion-gateway/snmp_exporter/auth.yml",
        "h16_env_braced",
        False,
        r"""
auths:
  medtek_v3:
    version: 3
    username: nmsv3
    security_level: authPriv
    auth_protocol: SHA
    password: {V}
    priv_protocol: AES
    priv_password: {V2}
""",
    ),
    _t(
        "devices/nursecall/sip.conf",
        "h16_pw",
        True,
        r"""
; Pasientsignal / sykesignal - SIP-trunk mot Ascom-gateway
[general]
context=nursecall
allowguest=no
udpbindaddr=10.43.0.10

[ascom-gw1]
type=friend
host=10.43.0.21
secret={V}
context=nursecall-in

[dect-base-c2]
type=friend
host=dynamic
defaultuser=dectc2
secret={V2}
""",
    ),
    _t(
        "devices/nursecall/README.no.md",
        "h16_redacted",
        False,
        r"""
# Sykesignal (nurse call)

SIP-oppsettet ligger i `sip.conf`. Hemmelighetene er tatt ut av denne dokumentasjonen.

| Enhet | Bruker | Passord |
| --- | --- | --- |
| ascom-gw1 | ascom-gw1 | {V} |
| dect-base-c2 | dectc2 | {V2} |

Ved bytte av passord: oppdater både Asterisk og Ascom Unite (se rutine MT-17).
""",
    ),
    _t(
        "devices/medtek-vpn/ipsec.secrets",
        "h16_psk",
        True,
        r"""
# /etc/ipsec.secrets - site-to-site mot leverandør (pumpeovervåking)
10.42.0.1 185.44.12.9 : PSK "{V}"
# Oulu <-> Brenvik medtek-nett
10.42.0.1 10.142.0.1 : PSK "{V2}"
""",
    ),
    _t(
        "devices/medtek-vpn/README.md",
        "h16_kv_ref",
        False,
        r"""
# Medtek site-to-site VPN

The pre-shared keys are not kept in this repository. The deploy job reads them from:

- Brenvik <-> vendor: `{V}`
- Brenvik <-> Oulu: `{V2}`

Rotate yearly in March together with the vendor (contact: service desk, ref. MT-VPN-03).
""",
    ),
]

# ---------------------------------------------------------------------------------------------
# Biobank LIMS (Laravel/PHP, Python ETL, SQL)
# ---------------------------------------------------------------------------------------------
TEMPLATES += [
    _t(
        "biobank/lims/config/database.php",
        "h16_pw",
        True,
        r"""
<?php

return [
    'default' => 'pgsql',
    'connections' => [
        'pgsql' => [
            'driver' => 'pgsql',
            'host' => 'lims-db.bri.brenvik-uh.no',
            'port' => '5432',
            'database' => 'biobank',
            'username' => 'lims_app',
            'password' => '{V}',
            'charset' => 'utf8',
            'sslmode' => 'require',
        ],
        'freezerlog' => [
            'driver' => 'mysql',
            'host' => 'freezerlog.bri.brenvik-uh.no',
            'database' => 'freezer',
            'username' => 'freezer_ro',
            'password' => '{V2}',
        ],
    ],
];
""",
    ),
    _t(
        "biobank/lims/config/queue.php",
        "h16_php_ref",
        False,
        r"""
<?php

return [
    'default' => 'redis',
    'connections' => [
        'redis' => [
            'driver' => 'redis',
            'connection' => 'default',
            'queue' => 'lims',
            'password' => {V},
        ],
        'database' => [
            'driver' => 'database',
            'table' => 'jobs',
            'password' => {V2},
        ],
    ],
];
""",
    ),
    _t(
        "biobank/lims/.env",
        "h16_pw",
        True,
        r"""
APP_NAME="BRI Biobank LIMS"
APP_ENV=production
APP_DEBUG=false
APP_URL=https://lims.bri.brenvik-uh.no

DB_CONNECTION=pgsql
DB_HOST=lims-db.bri.brenvik-uh.no
DB_DATABASE=biobank
DB_USERNAME=lims_app
DB_PASSWORD={V}

REDIS_HOST=lims-redis.bri.brenvik-uh.no
REDIS_PASSWORD={V2}

MAIL_MAILER=smtp
MAIL_HOST=smtp.brenvik-uh.no
MAIL_USERNAME=lims-noreply
MAIL_PASSWORD="{V3}"
""",
    ),
    _t(
        "biobank/lims/.env.example",
        "h16_placeholder",
        False,
        r"""
APP_NAME="BRI Biobank LIMS"
APP_ENV=local
APP_URL=http://localhost:8000

DB_CONNECTION=pgsql
DB_HOST=127.0.0.1
DB_DATABASE=biobank
DB_USERNAME=lims_app
DB_PASSWORD={V}

REDIS_PASSWORD={V2}
MAIL_PASSWORD={V3}
""",
    ),
    _t(
        "biobank/lims/database/seeders/AdminUserSeeder.php",
        "h16_bcrypt",
        False,
        r"""
<?php

namespace Database\Seeders;

use Illuminate\Database\Seeder;
use Illuminate\Support\Facades\DB;

class AdminUserSeeder extends Seeder
{
    public function run(): void
    {
        // Hashes copied from the old LIMS; users must reset on first login.
        DB::table('users')->insert([
            ['email' => 'biobank-admin@brenvik-uh.no', 'password' => '{V}', 'must_reset' => true],
            ['email' => 'lab-koordinator@brenvik-uh.no', 'password' => '{V2}', 'must_reset' => true],
        ]);
    }
}
""",
    ),
    _t(
        "biobank/lims/app/Services/LabelPrinter.php",
        "h16_vendor_pw",
        True,
        r"""
<?php

namespace App\Services;

class LabelPrinter
{
    // Zebra ZT411 i fryserommet; nettverkspassordet er fabrikkinnstilling
    private const HOST = 'zebra-frys01.bri.brenvik-uh.no';
    private const PRINTER_PASSWORD = '{V}';

    public function printTube(string $sampleId, string $project): void
    {
        $zpl = "^XA^FO30,30^BQN,2,4^FDQA,{$sampleId}^FS^FO160,40^A0N,28,28^FD{$project}^FS^XZ";
        $sock = fsockopen(self::HOST, 9100);
        fwrite($sock, "! U1 setvar \"device.password\" \"" . self::PRINTER_PASSWORD . "\"\r\n");
        fwrite($sock, $zpl);
        fclose($sock);
    }
}
""",
    ),
    _t(
        "biobank/lims/tests/fixtures/samples.csv",
        "h16_specimen_id",
        False,
        r"""
sample_id,project,material,volume_ul,freezer,rack,position,collected
{V},HUNT-REG,plasma,500,F-12,R03,A1,2024-03-02
{V2},HUNT-REG,serum,250,F-12,R03,A2,2024-03-02
{V3},FINRISK-BVK,buffy coat,200,F-07,R11,C4,2024-04-18
{V4},EST-BIO,DNA,50,F-02,R01,H12,2024-05-06
""",
    ),
    _t(
        "biobank/etl/load_freezer_inventory.py",
        "h16_pw",
        True,
        r"""
import csv
import sys

import psycopg

# Kjøres manuelt av biobank-koordinator etter frysertelling
conn = psycopg.connect(
    host="lims-db.bri.brenvik-uh.no",
    dbname="biobank",
    user="biobank_etl",
    password="{V}",
    sslmode="require",
)

with conn, conn.cursor() as cur, open(sys.argv[1], newline="") as fh:
    for row in csv.DictReader(fh):
        cur.execute(
            "UPDATE samples SET freezer=%s, rack=%s, position=%s WHERE sample_id=%s",
            (row["freezer"], row["rack"], row["position"], row["sample_id"]),
        )
print("ok")
""",
    ),
    _t(
        "biobank/etl/settings.py",
        "h16_py_ref",
        False,
        r"""
import os

import keyring  # noqa: F401  (used by one of the lookups below)

LIMS_DB = {
    "host": os.environ.get("LIMS_DB_HOST", "lims-db.bri.brenvik-uh.no"),
    "dbname": "biobank",
    "user": "biobank_etl",
    "password": {V},
}

REDCAP_URL = "https://redcap.bri.brenvik-uh.no/api/"
REDCAP_TOKEN = {V2}
""",
    ),
    _t(
        "biobank/lims/config/services.php",
        "h16_sendgrid",
        True,
        r"""
<?php

return [
    'sendgrid' => [
        // brukes for prøvekvitteringer til deltakere
        'api_key' => '{V}',
        'from' => 'biobank@brenvik-uh.no',
    ],
    'redcap' => [
        'url' => 'https://redcap.bri.brenvik-uh.no/api/',
    ],
];
""",
    ),
    _t(
        "biobank/lims/lang/nb/auth.php",
        "h16_i18n_nb",
        False,
        r"""
<?php

return [
    'failed' => '{V}',
    'password' => '{V2}',
    'throttle' => 'For mange innloggingsforsøk. Prøv igjen om :seconds sekunder.',
    'reset_link' => 'Tilbakestill passord',
];
""",
    ),
    _t(
        "biobank/lims/lang/et.json",
        "h16_i18n_et",
        False,
        r"""
{
  "Login": "Logi sisse",
  "Password": "Parool",
  "These credentials do not match our records.": "{V}",
  "The password is too short.": "{V2}",
  "Forgot your password?": "Unustasid parooli?"
}
""",
    ),
    _t(
        "biobank/etl/freezer_alerts.py",
        "h16_twilio_token",
        True,
        r"""
from twilio.rest import Client

ACCOUNT_SID = "AC3f9e0d2b71c84a6e9d5b0c1a2e3f4d5a"
AUTH_TOKEN = "{V}"
ON_CALL = ["+4791234567", "+358401234567"]


def alert(freezer: str, temp_c: float) -> None:
    client = Client(ACCOUNT_SID, AUTH_TOKEN)
    for number in ON_CALL:
        client.messages.create(
            to=number,
            from_="BRI-Biobank",
            body=f"ALARM fryser {freezer}: {temp_c:.1f} C",
        )
""",
    ),
    _t(
        "biobank/etl/sms_settings.py",
        "h16_twilio_sid",
        False,
        r"""
import os

# Account SIDs are identifiers, not secrets; the auth token comes from the environment.
TWILIO_ACCOUNT_SID = "{V}"
TWILIO_SUBACCOUNT_SID = "{V2}"
TWILIO_AUTH_TOKEN = os.environ["TWILIO_AUTH_TOKEN"]
""",
    ),
]

# ---------------------------------------------------------------------------------------------
# Research computing: HPC, data lake, pipelines, JupyterHub, R, ML
# ---------------------------------------------------------------------------------------------
TEMPLATES += [
    _t(
        "bri-datalake/.env",
        "h16_aws_env_pair",
        True,
        r"""
# rclone/s5cmd for the genomics bucket (eu-north-1), owner: BRI research IT
{V}
AWS_DEFAULT_REGION=eu-north-1
S3_BUCKET=bri-genomics-raw
""",
    ),
    _t(
        "bri-hpc/skel/.aws/credentials",
        "h16_aws_ini_pair",
        True,
        r"""
[default]
region = eu-north-1

[bri-genomics]
{V}

[bri-imaging-export]
{V2}
""",
    ),
    _t(
        "docs/research/datalake-access.md",
        "h16_aws_example",
        False,
        r"""
# Tilgang til forskningsdatasjøen

Du får egne nøkler fra BRI research IT via sikker kanal. Filen `~/.aws/credentials`
skal se slik ut (eksempelverdier fra AWS-dokumentasjonen):

```ini
[bri-genomics]
{V}
```

Del aldri nøklene i Teams eller e-post. Ved mistanke om lekkasje: deaktiver nøkkelen i IAM
og meld avvik i TrinnVis.
""",
    ),
    _t(
        "bri-pipelines/wgs/nextflow.config",
        "h16_tower_token",
        True,
        r"""
params {
    genome = 'GRCh38'
    outdir = 's3://bri-genomics-processed/wgs'
}

process {
    executor = 'slurm'
    queue = 'bigmem'
    clusterOptions = '--account=bri-genomics'
}

tower {
    enabled = true
    endpoint = 'https://seqera.bri.brenvik-uh.no/api'
    accessToken = '{V}'
    workspaceId = '148102457719812'
}
""",
    ),
    _t(
        "bri-pipelines/rnaseq/nextflow.config",
        "h16_nf_ref",
        False,
        r"""
params {
    outdir = 's3://bri-genomics-processed/rnaseq'
}

aws {
    region = 'eu-north-1'
    client {
        endpoint = 'https://minio.bri.brenvik-uh.no'
        s3PathStyleAccess = true
    }
}

tower {
    enabled = true
    endpoint = 'https://seqera.bri.brenvik-uh.no/api'
    accessToken = {V}
}
""",
    ),
    _t(
        "bri-pipelines/snakemake/config/config.yaml",
        "h16_minio_secret",
        True,
        r"""
samples: config/samples.tsv
reference:
  fasta: /cluster/ref/GRCh38/GRCh38.fa
remote:
  provider: S3
  endpoint_url: https://minio.bri.brenvik-uh.no
  access_key_id: BRIPIPELINE7Q2X
  secret_access_key: {V}
threads:
  bwa: 32
  gatk: 8
""",
    ),
    _t(
        "bri-pipelines/snakemake/profiles/slurm/config.yaml",
        "h16_git_sha",
        False,
        r"""
executor: slurm
jobs: 200
default-resources:
  slurm_account: bri-genomics
  slurm_partition: normal
  runtime: 720
# pinned wrapper and pipeline revisions (git commit ids)
wrapper-prefix: https://git.bri.brenvik-uh.no/pipelines/snakemake-wrappers/raw/{V}/
config:
  pipeline_rev: {V2}
""",
    ),
    _t(
        "bri-jupyterhub/jupyterhub_config.py",
        "h16_hmac_key",
        True,
        r"""
c = get_config()  # noqa: F821

c.JupyterHub.bind_url = "https://jupyter.bri.brenvik-uh.no"
c.JupyterHub.authenticator_class = "ldapauthenticator.LDAPAuthenticator"
c.LDAPAuthenticator.server_address = "ldaps://dc01.ad.brenvik-uh.no"
c.LDAPAuthenticator.bind_dn_template = ["uid={username},ou=forskere,dc=brenvik,dc=no"]

c.JupyterHub.spawner_class = "batchspawner.SlurmSpawner"
c.ConfigurableHTTPProxy.auth_token = "{V}"
c.JupyterHub.cookie_secret = bytes.fromhex("{V2}")
""",
    ),
    _t(
        "bri-jupyterhub/jupyter_server_config.py",
        "h16_argon2",
        False,
        r"""
c = get_config()  # noqa: F821

# Single-user server on the secure analysis node (TSD-like zone). The hash below is made with
# jupyter_server.auth.passwd(); the clear text is kept by the project owner only.
c.ServerApp.ip = "127.0.0.1"
c.ServerApp.open_browser = False
c.PasswordIdentityProvider.hashed_password = "{V}"
c.PasswordIdentityProvider.password_required = True
""",
    ),
    _t(
        "notebooks/omop_cohort_diabetes.ipynb",
        "h16_url_pw",
        True,
        r"""
{
 "cells": [
  {
   "cell_type": "markdown",
   "metadata": {},
   "source": ["# Kohort: type 2-diabetes, OMOP CDM v5.4"]
  },
  {
   "cell_type": "code",
   "execution_count": 1,
   "metadata": {},
   "outputs": [],
   "source": [
    "import pandas as pd\n",
    "from sqlalchemy import create_engine\n",
    "engine = create_engine(\"postgresql://omop_analyst:{V}@omop-db.bri.brenvik-uh.no:5432/omop\")\n",
    "cohort = pd.read_sql(\"SELECT person_id FROM cdm.condition_occurrence WHERE condition_concept_id = 201826\", engine)"
   ]
  }
 ],
 "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
    ),
    _t(
        "notebooks/rnaseq_qc.ipynb",
        "h16_uuid",
        False,
        r"""
{
 "cells": [
  {
   "cell_type": "code",
   "execution_count": 3,
   "metadata": {"id": "{V}"},
   "outputs": [
    {
     "name": "stdout",
     "output_type": "stream",
     "text": ["run_id: {V2}\n", "samples passing QC: 94/96\n"]
    }
   ],
   "source": ["qc = load_multiqc('s3://bri-genomics-processed/rnaseq/multiqc_data.json')\n", "print_summary(qc)"]
  }
 ],
 "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
    ),
    _t(
        "R/.Renviron",
        "h16_redcap",
        True,
        r"""
# Personlig .Renviron for analyseserveren (ikke del)
R_LIBS_USER=~/R/library/4.4
REDCAP_URL=https://redcap.bri.brenvik-uh.no/api/
REDCAP_API_TOKEN={V}
REDCAP_API_TOKEN_FINRISK={V2}
""",
    ),
    _t(
        "R/analysis/00_setup.R",
        "h16_r_ref",
        False,
        r"""
library(DBI)
library(RPostgres)
library(REDCapR)

con <- dbConnect(
  Postgres(),
  host = "omop-db.bri.brenvik-uh.no",
  dbname = "omop",
  user = Sys.getenv("USER"),
  password = {V}
)

redcap_token <- {V2}
""",
    ),
    _t(
        "R/analysis/01_fetch_redcap.R",
        "h16_redcap",
        True,
        r"""
# Hent baseline-skjema fra REDCap (prosjekt 212, "Hjertesvikt-kohort")
library(REDCapR)

uri <- "https://redcap.bri.brenvik-uh.no/api/"
token <- "{V}"  # midlertidig, bytt til Sys.getenv() før deling

baseline <- redcap_read(redcap_uri = uri, token = token, forms = "baseline")$data
saveRDS(baseline, "data/baseline.rds")
""",
    ),
    _t(
        "bri-ml/radiology-report-llm/train.py",
        "h16_hf",
        True,
        r"""
from datasets import load_dataset
from huggingface_hub import login
from transformers import AutoModelForCausalLM, AutoTokenizer

# private org "brenvik-ri" on the Hub
login(token="{V}")

BASE = "brenvik-ri/nb-radiology-base"
tok = AutoTokenizer.from_pretrained(BASE)
model = AutoModelForCausalLM.from_pretrained(BASE)
data = load_dataset("brenvik-ri/rtg-thorax-reports-deid", split="train")
print(len(data), "training reports")
""",
    ),
    _t(
        "bri-ml/note-summary/src/summarise.ts",
        "h16_openai",
        True,
        r"""
import OpenAI from 'openai';

// Pilot: oppsummering av avidentifiserte epikriser (REK 2024/12345)
const client = new OpenAI({
  apiKey: process.env.OPENAI_API_KEY || '{V}',
});

export async function summarise(text: string): Promise<string> {
  const res = await client.chat.completions.create({
    model: 'gpt-4o-mini',
    messages: [
      { role: 'system', content: 'Oppsummer epikrisen på norsk i fem punkter.' },
      { role: 'user', content: text },
    ],
  });
  return res.choices[0]?.message?.content ?? '';
}
""",
    ),
    _t(
        "bri-ml/README.md",
        "h16_placeholder",
        False,
        r"""
# BRI ML sandbox

Set your own tokens before running anything:

```bash
export HF_TOKEN={V}
export OPENAI_API_KEY={V2}
python radiology-report-llm/train.py
```

Data must be de-identified and approved by the data protection officer first.
""",
    ),
    _t(
        "bri-hpc/slurm/slurmdbd.conf",
        "h16_pw",
        True,
        r"""
# slurmdbd on hpc-mgmt1.bri.brenvik-uh.no
AuthType=auth/munge
DbdHost=hpc-mgmt1
SlurmUser=slurm
LogFile=/var/log/slurm/slurmdbd.log
PidFile=/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=hpc-db1.bri.brenvik-uh.no
StorageUser=slurm
StoragePass={V}
StorageLoc=slurm_acct_db
""",
    ),
    _t(
        "bri-hpc/ansible/group_vars/slurm/vault.yml",
        "h16_ansible_vault",
        False,
        r"""
# ansible-vault encrypted; edit with: ansible-vault edit group_vars/slurm/vault.yml
{V}
""",
    ),
    _t(
        "bri-hpc/ansible/group_vars/slurm/main.yml",
        "h16_tpl_ref",
        False,
        r"""
slurm_cluster_name: bri-hpc
slurmdbd_storage_host: hpc-db1.bri.brenvik-uh.no
slurmdbd_storage_user: slurm
slurmdbd_storage_pass: "{V}"
munge_key_b64: "{V2}"
ldap_bind_password: "{V3}"
""",
    ),
    _t(
        "bri-datalake/minio/docker-compose.yml",
        "h16_long_pw",
        True,
        r"""
services:
  minio:
    image: quay.io/minio/minio:RELEASE.2024-10-13T13-34-11Z
    command: server /data --console-address ":9001"
    environment:
      MINIO_ROOT_USER: bri-lake-admin
      MINIO_ROOT_PASSWORD: "{V}"
      MINIO_SERVER_URL: https://minio.bri.brenvik-uh.no
    volumes:
      - /srv/lake:/data
    ports:
      - "9000:9000"
      - "9001:9001"
  mc-mirror:
    image: quay.io/minio/mc
    entrypoint: >
      /bin/sh -c "mc alias set lake http://minio:9000 bri-lake-admin '{V}' &&
      mc mirror --watch lake/bri-genomics-raw /backup/raw"
""",
    ),
    _t(
        "bri-datalake/terraform/storage.tf",
        "h16_tpl_ref",
        False,
        r"""
resource "azurerm_storage_account" "lake" {
  name                     = "bvkresearchlake"
  resource_group_name      = azurerm_resource_group.bri.name
  location                 = "norwayeast"
  account_tier             = "Standard"
  account_replication_type = "ZRS"
  is_hns_enabled           = true
}

resource "azurerm_key_vault_secret" "lake_admin" {
  name         = "lake-admin-password"
  value        = {V}
  key_vault_id = azurerm_key_vault.bri.id
}
""",
    ),
    _t(
        "bri-datalake/scripts/Sync-ImagingExport.ps1",
        "h16_azure_conn",
        True,
        r"""
# Synkroniserer avidentifiserte bildeeksporter til forskningsdatasjøen hver natt
param(
    [string]$Source = 'E:\Eksport\Avidentifisert'
)

$conn = '{V}'
$ctx = New-AzStorageContext -ConnectionString $conn

Get-ChildItem -Path $Source -Filter *.dcm -Recurse | ForEach-Object {
    Set-AzStorageBlobContent -File $_.FullName -Container 'imaging-deid' `
        -Blob ($_.FullName.Substring($Source.Length + 1)) -Context $ctx -Force | Out-Null
}
Write-Host "Ferdig: $(Get-Date -Format o)"
""",
    ),
    _t(
        "bri-datalake/scripts/azcopy_nightly.sh",
        "h16_sas",
        True,
        r"""
#!/usr/bin/env bash
set -euo pipefail
# nattlig kopi av prosesserte VCF-er til Azure (arkiv-tier settes av livssyklusregel)
SRC=/cluster/projects/bri-genomics/processed/vcf
DEST="https://bvkresearchlake.blob.core.windows.net/vcf-archive?{V}"
azcopy sync "$SRC" "$DEST" --recursive --delete-destination=false --log-level=WARNING
""",
    ),
    _t(
        "bri-omics/.pypirc",
        "h16_pypi",
        True,
        r"""
[distutils]
index-servers =
    pypi
    bri-internal

[pypi]
username = __token__
password = {V}

[bri-internal]
repository = https://nexus.brenvik-uh.no/repository/pypi-internal/
username = bri-release
""",
    ),
    _t(
        "bri-omics/.github/workflows/release.yml",
        "h16_ci_ref",
        False,
        r"""
name: release
on:
  push:
    tags: ["v*"]
jobs:
  publish:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with:
          python-version: "3.12"
      - run: pip install build twine && python -m build
      - run: twine upload dist/*
        env:
          TWINE_USERNAME: __token__
          TWINE_PASSWORD: {V}
""",
    ),
    _t(
        "bri-omics/uv.lock",
        "h16_hex_checksum",
        False,
        r"""
version = 1
requires-python = ">=3.11"

[[package]]
name = "pysam"
version = "0.22.1"
source = { registry = "https://pypi.org/simple" }
wheels = [
    { url = "https://files.pythonhosted.org/packages/pysam-0.22.1-cp312-manylinux_2_28_x86_64.whl", hash = "sha256:{V}" },
]

[[package]]
name = "pydicom"
version = "2.4.4"
source = { registry = "https://pypi.org/simple" }
sdist = { url = "https://files.pythonhosted.org/packages/pydicom-2.4.4.tar.gz", hash = "sha256:{V2}" }
""",
    ),
    _t(
        "bri-jupyterhub/docker/start-notebook.sh",
        "h16_jupyter_token",
        True,
        r"""
#!/bin/bash
# Startes av systemd på analysenoden; tokenet er fast så lenkene i wiki fungerer
exec jupyter lab \
  --ip=0.0.0.0 --port=8888 --no-browser \
  --ServerApp.token={V} \
  --ServerApp.root_dir=/projects/bri-cardio \
  --ServerApp.allow_origin='https://jupyter.bri.brenvik-uh.no'
""",
    ),
]

# ---------------------------------------------------------------------------------------------
# Patient app: backend (Kotlin, TypeScript, Rust), iOS, Android, React Native
# ---------------------------------------------------------------------------------------------
TEMPLATES += [
    _t(
        "patient-app/backend/src/push/fcm.ts",
        "h16_fcm_key",
        True,
        r"""
import axios from 'axios';

// Legacy HTTP API (migrering til v1 er planlagt, sak PAS-311)
const FCM_SERVER_KEY = '{V}';

export async function sendReminder(deviceToken: string, title: string, body: string) {
  await axios.post(
    'https://fcm.googleapis.com/fcm/send',
    { to: deviceToken, notification: { title, body } },
    { headers: { Authorization: `key=${FCM_SERVER_KEY}`, 'Content-Type': 'application/json' } },
  );
}
""",
    ),
    _t(
        "patient-app/ios/BrenvikPasient/nb.lproj/Localizable.strings",
        "h16_i18n_nb",
        False,
        r"""
/* Innlogging */
"login.title" = "Logg inn med BankID";
"login.error.credentials" = "{V}";
"login.error.password_rules" = "{V2}";
"login.forgot" = "Glemt passord?";
"settings.change_password" = "Endre passord";
""",
    ),
    _t(
        "patient-app/ios/BrenvikPasient/fi.lproj/Localizable.strings",
        "h16_i18n_fi",
        False,
        r"""
/* Kirjautuminen */
"login.title" = "Kirjaudu sisään";
"login.error.credentials" = "{V}";
"login.error.password_rules" = "{V2}";
"settings.change_password" = "Vaihda salasana";
""",
    ),
    _t(
        "patient-app/ios/BrenvikPasient/Config/AppSecrets.swift",
        "h16_api_key",
        True,
        r"""
import Foundation

enum AppSecrets {
    // Nøkkel for timebestillings-API-et (produksjon)
    static let bookingApiKey = "{V}"
    static let bookingBaseURL = URL(string: "https://api.brenvik-uh.no/booking/v2")!
}

extension URLRequest {
    mutating func addBookingAuth() {
        setValue(AppSecrets.bookingApiKey, forHTTPHeaderField: "X-Api-Key")
    }
}
""",
    ),
    _t(
        "patient-app/backend/keys/AuthKey_7QK2M9X4LB.p8",
        "h16_pkcs8_key",
        True,
        r"""
{V}
""",
    ),
    _t(
        "patient-app/backend/keys/README.md",
        "h16_fingerprint",
        False,
        r"""
# Keys

The APNs key itself lives in Key Vault `kv-pasientapp-prod` (secret `apns-auth-key`).
Fingerprints to check what is deployed:

| Key | Fingerprint |
| --- | --- |
| APNs auth key 7QK2M9X4LB | `{V}` |
| Deploy SSH key (GitHub) | `{V2}` |
""",
    ),
    _t(
        "patient-app/android/keystore.properties",
        "h16_pw",
        True,
        r"""
storeFile=../release/brenvik-pasient-release.jks
storePassword={V}
keyAlias=brenvik-pasient
keyPassword={V2}
""",
    ),
    _t(
        "patient-app/android/app/build.gradle.kts",
        "h16_gradle_ref",
        False,
        r"""
plugins {
    id("com.android.application")
    id("org.jetbrains.kotlin.android")
}

android {
    namespace = "no.brenvik.pasient"
    compileSdk = 35
    signingConfigs {
        create("release") {
            storeFile = file("../release/brenvik-pasient-release.jks")
            storePassword = {V}
            keyAlias = "brenvik-pasient"
            keyPassword = {V2}
        }
    }
    buildTypes {
        release { signingConfig = signingConfigs.getByName("release") }
    }
}
""",
    ),
    _t(
        "patient-app/backend/src/main/kotlin/no/brenvik/pasient/sms/SmsConfig.kt",
        "h16_twilio_token",
        True,
        r"""
package no.brenvik.pasient.sms

import com.twilio.Twilio

object SmsConfig {
    private const val ACCOUNT_SID = "AC81d4e0c9b27a4f1e8d3c6b5a0f9e2d17"
    private const val AUTH_TOKEN = "{V}"

    fun init() {
        Twilio.init(ACCOUNT_SID, AUTH_TOKEN)
    }
}
""",
    ),
    _t(
        "patient-app/backend/src/test/kotlin/no/brenvik/pasient/sms/SmsServiceTest.kt",
        "h16_fake_test",
        False,
        r"""
package no.brenvik.pasient.sms

import io.mockk.mockk
import kotlin.test.Test
import kotlin.test.assertEquals

class SmsServiceTest {
    private val gateway = mockk<SmsGateway>(relaxed = true)

    @Test
    fun `sends reminder with configured sender`() {
        val service = SmsService(gateway, authToken = "{V}", sender = "Brenvik")
        val result = service.reminder("+4791234567", "Du har time i morgen kl 09:30")
        assertEquals(true, result.accepted)
    }
}
""",
    ),
    _t(
        "patient-app/backend/.env.production",
        "h16_sendgrid",
        True,
        r"""
NODE_ENV=production
PORT=8080
FHIR_BASE=https://fhir.brenvik-uh.no/fhir
SENDGRID_API_KEY={V}
MAIL_FROM=ikke-svar@brenvik-uh.no
""",
    ),
    _t(
        "patient-app/mobile/src/i18n/et.json",
        "h16_i18n_et",
        False,
        r"""
{
  "auth": {
    "title": "Logi sisse",
    "error": "{V}",
    "passwordHint": "{V2}",
    "forgot": "Unustasid parooli?"
  },
  "appointments": { "title": "Minu ajad" }
}
""",
    ),
    _t(
        "patient-app/mobile/package-lock.json",
        "h16_sri",
        False,
        r"""
{
  "name": "brenvik-pasient-mobile",
  "version": "3.8.1",
  "lockfileVersion": 3,
  "packages": {
    "node_modules/react-native-keychain": {
      "version": "8.2.0",
      "resolved": "https://registry.npmjs.org/react-native-keychain/-/react-native-keychain-8.2.0.tgz",
      "integrity": "{V}"
    },
    "node_modules/jwt-decode": {
      "version": "4.0.0",
      "resolved": "https://registry.npmjs.org/jwt-decode/-/jwt-decode-4.0.0.tgz",
      "integrity": "{V2}"
    }
  }
}
""",
    ),
    _t(
        "patient-app/mobile/.npmrc",
        "h16_npm",
        True,
        r"""
@brenvik:registry=https://registry.npmjs.org/
//registry.npmjs.org/:_authToken={V}
save-exact=true
""",
    ),
    _t(
        "patient-app/backend/.npmrc",
        "h16_ci_ref",
        False,
        r"""
@brenvik:registry=https://registry.npmjs.org/
//registry.npmjs.org/:_authToken={V}
engine-strict=true
""",
    ),
    _t(
        "patient-app/backend/src/main/resources/application.conf",
        "h16_hmac_key",
        True,
        r"""
ktor {
  deployment { port = 8080 }
  application { modules = [ no.brenvik.pasient.ApplicationKt.module ] }
}

jwt {
  issuer = "https://api.brenvik-uh.no/pasient"
  audience = "brenvik-pasient-app"
  realm = "pasient"
  secret = "{V}"
  secret = ${?JWT_SECRET}
}
""",
    ),
    _t(
        "patient-app/device-gw/src/main.rs",
        "h16_api_key",
        True,
        r"""
use reqwest::Client;
use serde::Serialize;

// Forwards home blood-pressure readings to the patient app backend.
const BACKEND: &str = "https://api.brenvik-uh.no/pasient/v1/measurements";
const API_KEY: &str = "{V}";

#[derive(Serialize)]
struct Reading {
    patient_ref: String,
    systolic: u16,
    diastolic: u16,
}

pub async fn forward(client: &Client, reading: &Reading) -> reqwest::Result<()> {
    client
        .post(BACKEND)
        .header("X-Api-Key", API_KEY)
        .json(reading)
        .send()
        .await?
        .error_for_status()?;
    Ok(())
}
""",
    ),
    _t(
        "patient-app/device-gw/src/config.rs",
        "h16_placeholder",
        False,
        r"""
use std::env;

pub struct Config {
    pub backend: String,
    pub api_key: String,
}

impl Config {
    pub fn from_env() -> Self {
        Config {
            backend: env::var("BACKEND_URL").unwrap_or_else(|_| "http://localhost:8080".into()),
            // the default only makes the dev build start; the backend rejects it
            api_key: env::var("DEVICE_GW_API_KEY").unwrap_or_else(|_| "{V}".into()),
        }
    }
}
""",
    ),
]

# ---------------------------------------------------------------------------------------------
# Hospital IT: AD, GPO, Citrix, printing, Wi-Fi, LDAP, Linux, Nginx, systemd
# ---------------------------------------------------------------------------------------------
TEMPLATES += [
    _t(
        "it-ops/ad/New-ServiceAccounts.ps1",
        "h16_weak_pw",
        True,
        r"""
# Oppretter tjenestekontoer for nye integrasjoner (kjøres på dc01 av AD-gruppen)
Import-Module ActiveDirectory

$ou = 'OU=Tjenestekontoer,OU=IT,DC=ad,DC=brenvik-uh,DC=no'
$accounts = @(
    @{ Name = 'svc_mirth02';  Password = '{V}' },
    @{ Name = 'svc_lisexport'; Password = '{V2}' }
)

foreach ($a in $accounts) {
    $secure = ConvertTo-SecureString $a.Password -AsPlainText -Force
    New-ADUser -Name $a.Name -Path $ou -AccountPassword $secure -Enabled $true `
        -PasswordNeverExpires $true -CannotChangePassword $true
}
""",
    ),
    _t(
        "it-ops/ad/Reset-UserPassword.ps1",
        "h16_ps_ref",
        False,
        r"""
param(
    [Parameter(Mandatory)] [string]$SamAccountName
)

# Brukes av servicedesk ved glemt passord; brukeren må bytte ved neste pålogging.
$newPassword = {V}
Set-ADAccountPassword -Identity $SamAccountName -NewPassword $newPassword -Reset
Set-ADUser -Identity $SamAccountName -ChangePasswordAtLogon $true
Write-Host "Passord tilbakestilt for $SamAccountName"
""",
    ),
    _t(
        "it-ops/gpo/Backup/{8F2C1A7E-3B44-4E0A-9C11-5D2E7F6A0B93}/Machine/Preferences/Groups/Groups.xml",
        "h16_gpp_cpassword",
        True,
        r"""
<?xml version="1.0" encoding="utf-8"?>
<Groups clsid="{3125E937-EB16-4b4c-9934-544FC6D24D26}">
  <User clsid="{DF5F1855-51E5-4d24-8B1A-D9BDE98BA1D1}" name="bvk-lokaladmin" image="2"
        changed="2019-05-14 08:12:44" uid="{4C1E7B5A-0D2F-4A8B-9E3C-6F7A8B9C0D1E}">
    <Properties action="U" newName="" fullName="Lokal administrator (klientdrift)"
        description="" cpassword="{V}" changeLogon="0" noChange="1" neverExpires="1"
        acctDisabled="0" userName="bvk-lokaladmin"/>
  </User>
</Groups>
""",
    ),
    _t(
        "it-ops/citrix/Test-StoreFront.ps1",
        "h16_pw",
        True,
        r"""
# Overvåkingsprobe: logger inn på StoreFront og starter "EPJ (DIPS Arena)" hvert 10. minutt
$store = 'https://citrix.brenvik-uh.no/Citrix/BrenvikWeb/'
$user = 'AD\svc_citrix_probe'
$pass = '{V}'

& 'C:\Program Files\Brenvik\CitrixProbe\probe.exe' `
    --store $store --user $user --password $pass --app 'EPJ (DIPS Arena)' --timeout 120

if ($LASTEXITCODE -ne 0) {
    Send-MailMessage -To 'citrix-drift@brenvik-uh.no' -From 'probe@brenvik-uh.no' `
        -Subject 'StoreFront-probe feilet' -SmtpServer 'smtp.brenvik-uh.no'
}
""",
    ),
    _t(
        "it-ops/citrix/README.md",
        "h16_thumbprint",
        False,
        r"""
# Citrix

- StoreFront: https://citrix.brenvik-uh.no (2 noder bak NetScaler)
- Sertifikat på StoreFront-nodene, tommelavtrykk: `{V}`
- NetScaler gateway-sertifikat: `{V2}`

Sertifikatene fornyes via intern PKI (mal "BVK-WebServer-2y"). Probe-kontoen
`svc_citrix_probe` har passord i Key Vault (`citrix-probe`).
""",
    ),
    _t(
        "it-ops/print/map-scan-share.bat",
        "h16_pw",
        True,
        r"""
@echo off
rem Skanning til mappe for multifunksjonsmaskinene i poliklinikken
rem Kjøres som oppstartsskript på skannestasjonene
net use S: /delete /y >nul 2>&1
net use S: \\print01.ad.brenvik-uh.no\Skann /user:AD\svc_print {V} /persistent:no
if errorlevel 1 (
    echo Klarte ikke koble til skannemappen >> %TEMP%\skann.log
    exit /b 1
)
echo OK
""",
    ),
    _t(
        "it-ops/print/deploy-printers.bat",
        "h16_batch_ref",
        False,
        r"""
@echo off
setlocal enabledelayedexpansion
rem Legger til skrivere fra print01; passord gis som parameter fra SCCM-oppgaven
set PRINTSRV=\\print01.ad.brenvik-uh.no
net use %PRINTSRV%\IPC$ /user:AD\svc_print {V}
for %%P in (POL-C2-01 POL-C2-02 SENG-B4-01) do (
    rundll32 printui.dll,PrintUIEntry /ga /n"%PRINTSRV%\%%P"
)
endlocal
""",
    ),
    _t(
        "it-ops/wifi/gjestenett.md",
        "h16_wifi_psk",
        True,
        r"""
# Trådløst nett - oversikt (intern wiki)

| SSID | Bruk | Autentisering |
| --- | --- | --- |
| BVK-Ansatt | ansatte | 802.1X (AD-konto) |
| eduroam | forskere, studenter | 802.1X |
| BVK-Gjest | pasienter og besøkende | WPA2-PSK |
| BVK-Medtek | medisinsk utstyr | WPA2-PSK (egen VLAN) |

Gjestenettet: passordet er `{V}` (byttes første mandag hver måned, henges opp i resepsjonen).
Medtek-nettet: `{V2}`, skal ikke gis ut til andre enn medisinsk-teknisk avdeling.
""",
    ),
    _t(
        "it-ops/wifi/hostapd-medtek.conf",
        "h16_wifi_psk",
        True,
        r"""
interface=wlan0
driver=nl80211
ssid=BVK-Medtek-Lab
hw_mode=a
channel=36
ieee80211n=1
wpa=2
wpa_key_mgmt=WPA-PSK
rsn_pairwise=CCMP
wpa_passphrase={V}
""",
    ),
    _t(
        "it-ops/wifi/LUE_MINUT.fi.md",
        "h16_pw_policy_fi",
        False,
        r"""
# Langaton verkko (Oulun toimipiste)

- BVK-Henkilosto: 802.1X, käyttäjätunnus ja salasana AD:stä
- Salasanavaatimus: {V}, vaihdetaan 180 päivän välein
- Vierasverkon salasana: kysy infosta (vaihtuu kuukausittain)
- Ongelmatilanteissa: palvelupiste, puh. 08 123 4567
""",
    ),
    _t(
        "it-ops/ldap/sssd.conf",
        "h16_pw",
        True,
        r"""
[sssd]
services = nss, pam, ssh
domains = ad.brenvik-uh.no

[domain/ad.brenvik-uh.no]
id_provider = ldap
auth_provider = ldap
ldap_uri = ldaps://dc01.ad.brenvik-uh.no, ldaps://dc02.ad.brenvik-uh.no
ldap_search_base = dc=ad,dc=brenvik-uh,dc=no
ldap_default_bind_dn = CN=svc_ldap_linux,OU=Tjenestekontoer,OU=IT,DC=ad,DC=brenvik-uh,DC=no
ldap_default_authtok_type = password
ldap_default_authtok = {V}
cache_credentials = true
""",
    ),
    _t(
        "it-ops/ldap/research-users.ldif",
        "h16_ssha",
        False,
        r"""
dn: uid=kforsker,ou=forskere,dc=bri,dc=brenvik-uh,dc=no
objectClass: inetOrgPerson
objectClass: posixAccount
uid: kforsker
cn: Kari Forsker
uidNumber: 20114
gidNumber: 20000
homeDirectory: /home/kforsker
userPassword: {V}

dn: uid=mtutkija,ou=forskere,dc=bri,dc=brenvik-uh,dc=no
objectClass: inetOrgPerson
uid: mtutkija
cn: Matti Tutkija
userPassword: {V2}
""",
    ),
    _t(
        "it-ops/ldap/check_ldap_bind.py",
        "h16_pw",
        True,
        r"""
#!/usr/bin/env python3
# Nagios-sjekk: kan tjenestekontoen binde mot begge domenekontrollerne?
import sys

from ldap3 import Connection, Server

BIND_DN = "CN=svc_nagios,OU=Tjenestekontoer,OU=IT,DC=ad,DC=brenvik-uh,DC=no"
BIND_PW = "{V}"

failed = []
for host in ("dc01.ad.brenvik-uh.no", "dc02.ad.brenvik-uh.no"):
    conn = Connection(Server(f"ldaps://{host}", connect_timeout=5), BIND_DN, BIND_PW)
    if not conn.bind():
        failed.append(host)
if failed:
    print("CRITICAL: bind feilet mot " + ", ".join(failed))
    sys.exit(2)
print("OK")
""",
    ),
    _t(
        "it-ops/linux/users.yml",
        "h16_sha512crypt",
        False,
        r"""
# Lokale nødkontoer på Linux-serverne (hash laget med mkpasswd -m sha-512)
breakglass_users:
  - name: bvk-nod
    password: "{V}"
    groups: [wheel]
  - name: medtek-nod
    password: "{V2}"
    groups: [medtek]
""",
    ),
    _t(
        "it-ops/ansible/roles/citrix_vda/defaults/main.yml",
        "h16_pw",
        True,
        r"""
citrix_vda_version: "2402.0.100"
citrix_ddc_list:
  - ddc01.ad.brenvik-uh.no
  - ddc02.ad.brenvik-uh.no
citrix_domain_join_user: "AD\\svc_domainjoin"
citrix_domain_join_password: "{V}"
citrix_local_admin_password: "{V2}"
""",
    ),
    _t(
        "it-ops/ansible/roles/citrix_vda/vars/prod.yml",
        "h16_tpl_ref",
        False,
        r"""
citrix_domain_join_user: "AD\\svc_domainjoin"
citrix_domain_join_password: "{V}"
citrix_local_admin_password: "{V2}"
""",
    ),
    _t(
        "it-ops/nginx/conf.d/lis-rapport.conf",
        "h16_basic_b64",
        True,
        r"""
server {
    listen 443 ssl;
    server_name lis-rapport.brenvik-uh.no;
    ssl_certificate     /etc/nginx/tls/lis-rapport.crt;
    ssl_certificate_key /etc/nginx/tls/lis-rapport.key;

    location /api/ {
        proxy_pass https://lis-prod.brenvik-uh.no:8443/report/;
        # LIS-rapport-API krever basic auth; brukerne autentiseres av SSO foran
        proxy_set_header Authorization "Basic {V}";
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }
}
""",
    ),
    _t(
        "it-ops/nginx/htpasswd.grafana",
        "h16_bcrypt",
        False,
        r"""
drift:{V}
medtek:{V2}
forskning:{V3}
""",
    ),
    _t(
        "it-ops/systemd/lis-exporter.service",
        "h16_pw",
        True,
        r"""
[Unit]
Description=Prometheus exporter for LIS queue metrics
After=network-online.target

[Service]
User=lis-exporter
Environment=LIS_DSN=sqlserver://lis-prod.brenvik-uh.no:1433?database=LABSYS
Environment=LIS_USER=exporter_ro
Environment=LIS_PASSWORD={V}
ExecStart=/usr/local/bin/lis-exporter --web.listen-address=:9412
Restart=on-failure

[Install]
WantedBy=multi-user.target
""",
    ),
    _t(
        "it-ops/systemd/pacs-sync.service",
        "h16_secret_name",
        False,
        r"""
[Unit]
Description=Nightly PACS study sync
After=network-online.target

[Service]
Type=oneshot
User=pacs-sync
LoadCredentialEncrypted=orthanc-password:/etc/credstore.encrypted/{V}
Environment=ORTHANC_PASSWORD_FILE=%d/orthanc-password
ExecStart=/opt/pacs-sync/bin/sync --since yesterday
""",
    ),
    _t(
        "it-ops/printers/inventory.csv",
        "h16_vendor_pw",
        True,
        r"""
hostname,model,location,ip,admin_user,admin_password,notes
mfp-pol-c2-01.brenvik-uh.no,Konica Minolta bizhub C450i,Poliklinikk C2,10.20.14.31,admin,{V},fabrikkpassord ikke endret
mfp-seng-b4-01.brenvik-uh.no,Kyocera TASKalfa 4054ci,Sengepost B4,10.20.16.12,Admin,{V2},
zebra-lab-03.brenvik-uh.no,Zebra ZD621,Prøvetaking,10.20.18.40,admin,{V3},etikettskriver
""",
    ),
    _t(
        "it-ops/printers/inventory-export.csv",
        "h16_redacted",
        False,
        r"""
hostname,model,location,ip,admin_user,admin_password,notes
mfp-oulu-k1-01.brenvik-uh.fi,Ricoh IM C3000,Kuvantaminen K1,10.120.4.21,admin,{V},salasana avainholvissa
mfp-tartu-l2-01.brenvik-uh.ee,Canon iR-ADV C5860i,Labor L2,10.220.6.11,Administrator,{V2},parool võtmehoidlas
""",
    ),
]

# ---------------------------------------------------------------------------------------------
# Vendors' remote support, tickets, chat exports, runbooks and wikis
# ---------------------------------------------------------------------------------------------
TEMPLATES += [
    _t(
        "vendors/philips-remote/tickets/INC0051877.md",
        "h16_pw",
        True,
        r"""
# INC0051877 - Fjernsupport IntelliSpace, bildebehandlingsstasjon RAD-C1-04

**Meldt av:** seksjon for radiologisk IKT
**Leverandør:** Philips (remote service)

2024-10-02 09:14 - Leverandør trenger midlertidig konto på jump01 for feilsøking.
2024-10-02 09:31 - Opprettet `vendor_philips` med utløp 2024-10-04. Midlertidig passord
gitt på telefon og skrevet her for vaktbytte: {V}
2024-10-02 11:05 - Leverandør bekrefter tilkobling via jump01.brenvik-uh.no.
2024-10-04 16:00 - Konto deaktivert (automatisk utløp).
""",
    ),
    _t(
        "vendors/siemens-lab/teams-export-2024-11.txt",
        "h16_weak_pw",
        True,
        r"""
[11.11.2024 08:02] Jonas Lie (Brenvik): Morn! Atellica-linjen i Tartu får ikke sendt resultater til LIS
[11.11.2024 08:05] Kadri Tamm (Siemens Healthineers): Tere! Kan du sjekke LIS-brukeren på middleware?
[11.11.2024 08:09] Jonas Lie (Brenvik): brukeren er lisif_tartu, passordet ble byttet i helgen
[11.11.2024 08:10] Jonas Lie (Brenvik): nytt passord: {V}
[11.11.2024 08:14] Kadri Tamm (Siemens Healthineers): Thanks, updated in the middleware, resending now
[11.11.2024 08:20] Jonas Lie (Brenvik): 👍 ser at ORU-meldingene kommer inn
""",
    ),
    _t(
        "vendors/siemens-lab/teams-export-2024-12.txt",
        "h16_kv_ref",
        False,
        r"""
[03.12.2024 13:40] Kadri Tamm (Siemens Healthineers): Hi, we need the new LIS password for Tartu again
[03.12.2024 13:52] Jonas Lie (Brenvik): Vi deler ikke passord i Teams lenger :) Det ligger her nå: {V}
[03.12.2024 13:53] Jonas Lie (Brenvik): du har fått lesetilgang via leverandørportalen
[03.12.2024 14:05] Kadri Tamm (Siemens Healthineers): Got it, aitäh!
""",
    ),
    _t(
        "vendors/jump/keys/vendor_ge_ed25519",
        "h16_openssh_key",
        True,
        r"""
{V}
""",
    ),
    _t(
        "vendors/jump/keys/authorized_keys",
        "h16_ssh_pub",
        False,
        r"""
# jump01.brenvik-uh.no - vendor access (reviewed quarterly, last 2025-01-15)
# GE Healthcare remote service
from="194.5.12.0/24",no-agent-forwarding,no-X11-forwarding {V}
# Philips remote service
from="145.14.0.0/16",no-agent-forwarding,no-X11-forwarding {V2}
""",
    ),
    _t(
        "vendors/vpn/fgt-vendor-phase1.conf",
        "h16_psk",
        True,
        r"""
config vpn ipsec phase1-interface
    edit "vendor-ge"
        set interface "port2"
        set ike-version 2
        set peertype any
        set net-device disable
        set proposal aes256-sha256
        set remote-gw 194.5.12.10
        set psksecret {V}
    next
end
""",
    ),
    _t(
        "vendors/vpn/fgt01-backup-2025-01.conf",
        "h16_forti_enc",
        False,
        r"""
#config-version=FGT100F-7.2.8-FW-build1639-240313:opmode=0:vdom=0:user=admin
config vpn ipsec phase1-interface
    edit "vendor-ge"
        set interface "port2"
        set remote-gw 194.5.12.10
        set psksecret {V}
    next
    edit "vendor-philips"
        set interface "port2"
        set remote-gw 145.14.8.20
        set psksecret {V2}
    next
end
""",
    ),
    _t(
        "docs/runbooks/pacs-failover.no.md",
        "h16_pw",
        True,
        r"""
# Runbook: PACS failover til sekundærsiden

1. Bekreft at primær `bvk-pacs01` er nede (Zabbix + ping).
2. Logg inn på `bvk-pacs02` som `pacsadmin`. Passordet er {V} (står også i den røde permen).
3. Stopp DICOM-mottak på primær: `systemctl stop sectra-dicom` (hvis den svarer).
4. Kjør `sudo /opt/sectra/bin/promote-secondary --confirm`.
5. Oppdater DNS-aliaset `pacs.brenvik-uh.no` til `bvk-pacs02` (TTL 60).
6. Varsle radiologisk vakt og IKT-vakt på Teams.
""",
    ),
    _t(
        "docs/runbooks/pacs-failover.fi.md",
        "h16_placeholder",
        False,
        r"""
# Ohje: PACS-varajärjestelmään siirtyminen (Oulu)

1. Varmista, että `bvk-pacs01` ei vastaa.
2. Kirjaudu `bvk-pacs02`:lle tunnuksella `pacsadmin`, salasana: `{V}`
   (salasana on avainholvissa, ei tässä dokumentissa).
3. Aja `sudo /opt/sectra/bin/promote-secondary --confirm`.
4. Ilmoita radiologian päivystykseen.
""",
    ),
    _t(
        "docs/runbooks/lis-restore.et.md",
        "h16_url_pw",
        True,
        r"""
# LIS-i andmebaasi taastamine (Tartu labor)

Varukoopiad asuvad `/backup/lis/` serveris `tartu-lab.brenvik-uh.ee`.

```bash
pg_restore --clean --if-exists \
  --dbname "postgresql://lis_admin:{V}@tartu-lab.brenvik-uh.ee:5432/lis" \
  /backup/lis/lis_$(date +%F).dump
```

Pärast taastamist käivita `systemctl restart lis-api` ja kontrolli logisid.
""",
    ),
    _t(
        "docs/onboarding/passordregler.md",
        "h16_pw_policy",
        False,
        r"""
# Passordregler for Brenvik universitetssykehus

- Passord for AD-kontoer: {V}, med minst tre av fire tegnklasser.
- Tjenestekontoer: {V2}, genereres av passordhvelvet, aldri manuelt.
- Passord deles aldri på e-post, Teams eller i saker; bruk passordhvelvet.
- Finsk og estisk personale følger samme regel (se `salasanasaannot.fi.md`, `paroolireeglid.et.md`).
""",
    ),
    _t(
        "docs/wiki/kontoskjema-mal.md",
        "h16_role_word",
        False,
        r"""
# Mal: bestilling av tjenestekonto

| Felt | Verdi |
| --- | --- |
| Brukernavn | brukernavn |
| Passord | {V} |
| System | (f.eks. LIS, PACS, Mirth) |
| Eier | (navn og seksjon) |

Skjemaet fylles ut i Selvbetjeningsportalen; IKT genererer passordet og legger det i hvelvet.
""",
    ),
]

# ---------------------------------------------------------------------------------------------
# Deploy, CI and ops tooling
# ---------------------------------------------------------------------------------------------
TEMPLATES += [
    _t(
        "deploy/compose/orthanc/docker-compose.yml",
        "h16_env_braced",
        False,
        r"""
services:
  orthanc:
    image: orthancteam/orthanc:24.10.3
    environment:
      ORTHANC__AUTHENTICATION_ENABLED: "true"
      ORTHANC__REGISTERED_USERS: |
        {"radiologi": "{V}"}
      ORTHANC__POSTGRESQL__HOST: pacs-db.brenvik-uh.no
      ORTHANC__POSTGRESQL__PASSWORD: "{V2}"
    ports:
      - "8042:8042"
      - "4242:4242"
""",
    ),
    _t(
        "deploy/helm/fhir-gateway/values-prod.yaml",
        "h16_client_secret",
        True,
        r"""
replicaCount: 3
image:
  repository: harbor.brenvik-uh.no/integrasjon/fhir-gateway
  tag: 2.14.1
ingress:
  enabled: true
  host: fhir.brenvik-uh.no
smart:
  tokenEndpoint: https://auth.brenvik-uh.no/oauth2/token
  clientId: bvk-fhir-gateway
  clientSecret: "{V}"
kanta:
  clientId: brenvik-oulu-kanta
  clientSecret: "{V2}"
""",
    ),
    _t(
        "deploy/helm/fhir-gateway/templates/deployment.yaml",
        "h16_secret_name",
        False,
        r"""
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "fhir-gateway.fullname" . }}
spec:
  replicas: {{ .Values.replicaCount }}
  template:
    spec:
      containers:
        - name: gateway
          image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
          env:
            - name: SMART_CLIENT_SECRET
              valueFrom:
                secretKeyRef:
                  name: {V}
                  key: client-secret
            - name: DB_PASSWORD
              valueFrom:
                secretKeyRef:
                  name: {V2}
                  key: password
""",
    ),
    _t(
        "deploy/terraform/azure/providers.tf",
        "h16_azure_secret",
        True,
        r"""
terraform {
  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = "~> 4.10"
    }
  }
}

provider "azurerm" {
  features {}
  subscription_id = "6b1f7c2e-3d4a-4e5b-8c9d-0a1b2c3d4e5f"
  tenant_id       = "0e4f6a8b-1c2d-4e3f-9a0b-7c6d5e4f3a2b"
  client_id       = "a7c3e9f1-5b2d-4c6e-8a0f-1e2d3c4b5a69"
  client_secret   = "{V}"
}
""",
    ),
    _t(
        "deploy/terraform/azure/keyvault.tf",
        "h16_uuid",
        False,
        r"""
resource "azurerm_key_vault" "prod" {
  name                       = "kv-bvk-prod"
  location                   = "norwayeast"
  resource_group_name        = "rg-bvk-integrasjon-prod"
  tenant_id                  = "{V}"
  sku_name                   = "premium"
  purge_protection_enabled   = true
  soft_delete_retention_days = 90
}

resource "azurerm_role_assignment" "fhir_gateway_secrets" {
  scope                = azurerm_key_vault.prod.id
  role_definition_name = "Key Vault Secrets User"
  principal_id         = "{V2}"
}
""",
    ),
    _t(
        "deploy/terraform/azure/variables.tf",
        "h16_placeholder",
        False,
        r"""
variable "sql_admin_login" {
  type    = string
  default = "bvkadmin"
}

variable "sql_admin_password" {
  type        = string
  sensitive   = true
  description = "Set in the pipeline from Key Vault. The default only marks it as unset: {V}"
  default     = "{V2}"
}
""",
    ),
    _t(
        ".github/workflows/deploy-fhir.yml",
        "h16_ci_ref",
        False,
        r"""
name: deploy-fhir-gateway
on:
  workflow_dispatch:
  push:
    branches: [main]
jobs:
  deploy:
    runs-on: [self-hosted, bvk-integrasjon]
    steps:
      - uses: actions/checkout@v4
      - name: Log in to Harbor
        run: echo "{V}" | docker login harbor.brenvik-uh.no -u 'robot$integrasjon+ci' --password-stdin
      - name: Azure login
        run: az login --service-principal -u "$AZ_CLIENT_ID" -p "{V2}" --tenant "$AZ_TENANT_ID"
      - run: helm upgrade --install fhir-gateway deploy/helm/fhir-gateway -f deploy/helm/fhir-gateway/values-prod.yaml
""",
    ),
    _t(
        "biobank/lims/.gitlab-ci.yml",
        "h16_gitlab",
        True,
        r"""
stages: [test, deploy]

variables:
  COMPOSER_CACHE_DIR: .composer
  # token for pulling the shared PHP packages (group bri/shared)
  SHARED_PKG_TOKEN: "{V}"

test:
  stage: test
  image: php:8.3-cli
  script:
    - composer config gitlab-token.git.bri.brenvik-uh.no "$SHARED_PKG_TOKEN"
    - composer install --no-progress
    - vendor/bin/phpunit

deploy:
  stage: deploy
  script:
    - ansible-playbook -i inventory/prod deploy.yml
  only: [main]
""",
    ),
    _t(
        "integrations/Jenkinsfile",
        "h16_github",
        True,
        r"""
pipeline {
    agent { label 'integrasjon' }
    environment {
        MIRTH_CLI = '/opt/mirthconnect/mccommand'
    }
    stages {
        stage('Export channels') {
            steps {
                sh "${MIRTH_CLI} -a https://mirth02.int.brenvik-uh.no:8443 -s export-all.txt"
            }
        }
        stage('Push backup') {
            steps {
                sh '''
                  git add channels/ && git commit -m "nightly export" || true
                  git push https://x-access-token:{V}@github.com/brenvik-uh/mirth-channels.git HEAD:main
                '''
            }
        }
    }
}
""",
    ),
    _t(
        "integrations/Jenkinsfile.release",
        "h16_secret_name",
        False,
        r"""
pipeline {
    agent { label 'integrasjon' }
    stages {
        stage('Deploy channels') {
            steps {
                withCredentials([
                    usernamePassword(credentialsId: '{V}', usernameVariable: 'MC_USER', passwordVariable: 'MC_PASS'),
                    string(credentialsId: '{V2}', variable: 'DB_PASS')
                ]) {
                    sh './deploy-channels.sh --user "$MC_USER" --password "$MC_PASS"'
                }
            }
        }
    }
}
""",
    ),
    _t(
        "epj-adapter/azure-pipelines.yml",
        "h16_azdo_pat",
        True,
        r"""
trigger:
  branches:
    include: [main]

pool:
  name: bvk-onprem

steps:
  - script: |
      dotnet nuget add source https://pkgs.dev.azure.com/brenvik-uh/_packaging/integrasjon/nuget/v3/index.json \
        --name bvk-integrasjon --username build --password {V} --store-password-in-clear-text
      dotnet restore
      dotnet publish src/Brenvik.EpjAdapter -c Release -o $(Build.ArtifactStagingDirectory)
    displayName: Build
""",
    ),
    _t(
        "ops/grafana/export_dashboards.sh",
        "h16_grafana",
        True,
        r"""
#!/usr/bin/env bash
# Tar kopi av alle dashboards til git hver natt
set -euo pipefail
GRAFANA=https://grafana.brenvik-uh.no
TOKEN={V}
mkdir -p dashboards
for uid in $(curl -fsS -H "Authorization: Bearer $TOKEN" "$GRAFANA/api/search?type=dash-db" | jq -r '.[].uid'); do
  curl -fsS -H "Authorization: Bearer $TOKEN" "$GRAFANA/api/dashboards/uid/$uid" \
    | jq '.dashboard' > "dashboards/$uid.json"
done
""",
    ),
    _t(
        "ops/alerts/alertmanager.yml",
        "h16_slack_webhook",
        True,
        r"""
global:
  resolve_timeout: 5m
  slack_api_url: '{V}'

route:
  receiver: bri-hpc
  group_by: [alertname, cluster]
  routes:
    - matchers: [team="forskning"]
      receiver: bri-hpc

receivers:
  - name: bri-hpc
    slack_configs:
      - channel: '#bri-hpc-alarmer'
        send_resolved: true
""",
    ),
    _t(
        "ops/alerts/alertmanager.example.yml",
        "h16_doc_webhook",
        False,
        r"""
# Example only. Copy to alertmanager.yml and paste the channel's webhook from Slack.
global:
  slack_api_url: '{V}'
receivers:
  - name: default
    slack_configs:
      - channel: '#alerts'
""",
    ),
    _t(
        "ops/chatops/bot.py",
        "h16_slack_bot",
        True,
        r"""
# BRI research-IT chat bot: answers "!kø" with the Slurm queue and "!disk" with quota usage
import os
import subprocess

from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler

app = App(token="{V}")


@app.message("!kø")
def queue(message, say):
    out = subprocess.run(["squeue", "-h", "-o", "%u %T"], capture_output=True, text=True).stdout
    say(f"{len(out.splitlines())} jobber i køen")


if __name__ == "__main__":
    SocketModeHandler(app, os.environ["SLACK_APP_TOKEN"]).start()
""",
    ),
    _t(
        "ops/vault/bootstrap-approle.sh",
        "h16_vault_token",
        True,
        r"""
#!/usr/bin/env bash
# Engangsoppsett av AppRole for Mirth (kjørt 2024-06-19 av integrasjon)
export VAULT_ADDR=https://vault.brenvik-uh.no:8200
export VAULT_TOKEN={V}

vault auth enable approle || true
vault write auth/approle/role/mirth token_policies=mirth-db token_ttl=1h token_max_ttl=4h
vault read -field=role_id auth/approle/role/mirth/role-id
vault write -f -field=secret_id auth/approle/role/mirth/secret-id
""",
    ),
    _t(
        "ops/sops/lis.enc.yaml",
        "h16_sops",
        False,
        r"""
lis:
    db_password: {V}
    report_password: {V2}
sops:
    azure_kv:
        - vault_url: https://kv-bvk-prod.vault.azure.net
          name: sops-key
          version: 3f1e2d4c5b6a7980a1b2c3d4e5f60718
    lastmodified: "2025-01-20T10:14:22Z"
    version: 3.9.1
""",
    ),
    _t(
        "ops/gcp/bri-genomics-sa.json",
        "h16_sa_private_key",
        True,
        r"""
{
  "type": "service_account",
  "project_id": "bri-genomics-eu",
  "private_key_id": "5c0b9f7e1d3a4c6b8e2f0a1d3c5b7e9f2a4c6e8d",
  "private_key": "{V}",
  "client_email": "variant-calling@bri-genomics-eu.iam.gserviceaccount.com",
  "client_id": "104583920174659283746",
  "auth_uri": "https://accounts.google.com/o/oauth2/auth",
  "token_uri": "https://oauth2.googleapis.com/token"
}
""",
    ),
    _t(
        "deploy/k8s/tls/fhir-tls.yaml",
        "h16_b64_pem_key",
        True,
        r"""
apiVersion: v1
kind: Secret
metadata:
  name: fhir-brenvik-uh-no-tls
  namespace: integrasjon
type: kubernetes.io/tls
data:
  tls.crt: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUJ2VENDQVdTZ0F3SUJBZ0lQ
  tls.key: {V}
""",
    ),
    _t(
        "deploy/k8s/tls/trust-bundle.yaml",
        "h16_cert",
        False,
        r"""
apiVersion: v1
kind: ConfigMap
metadata:
  name: bvk-trust-bundle
  namespace: integrasjon
data:
  helseid.pem: |
    {IV}
  kanta.pem: |
    {IV2}
""",
    ),
    _t(
        "ops/certs/mirth02.int.brenvik-uh.no.key",
        "h16_rsa_key",
        True,
        r"""
{V}
""",
    ),
    _t(
        "ops/certs/mirth02.int.brenvik-uh.no.key.enc",
        "h16_encrypted_key",
        False,
        r"""
{V}
""",
    ),
    _t(
        "ops/certs/helseid-signing.pub.pem",
        "h16_public_pem",
        False,
        r"""
# Offentlig nøkkel registrert i HelseID selvbetjening (klient b1e0c9a4)
{V}
""",
    ),
    _t(
        "ops/backup/pg_backup.sh",
        "h16_sh_ref",
        False,
        r"""
#!/usr/bin/env bash
set -euo pipefail
# Nattlig backup av LIMS-databasen
export PGPASSWORD={V}
pg_dump -h lims-db.bri.brenvik-uh.no -U backup -Fc biobank > "/backup/lims/biobank_$(date +%F).dump"
find /backup/lims -name '*.dump' -mtime +14 -delete
""",
    ),
    _t(
        "ops/postgres/roles.sql",
        "h16_pg_hash",
        False,
        r"""
-- Roller dumpet med pg_dumpall --roles-only fra lims-db (passordene er hasher)
CREATE ROLE lims_app;
ALTER ROLE lims_app WITH LOGIN NOSUPERUSER INHERIT PASSWORD '{V}';
CREATE ROLE biobank_etl;
ALTER ROLE biobank_etl WITH LOGIN NOSUPERUSER INHERIT PASSWORD '{V2}';
CREATE ROLE backup;
ALTER ROLE backup WITH LOGIN REPLICATION PASSWORD '{V3}';
""",
    ),
    _t(
        "fhir-gateway/src/test/resources/cassettes/token_exchange.yaml",
        "h16_basic_b64",
        True,
        r"""
interactions:
- request:
    method: POST
    uri: https://auth-stg.brenvik-uh.no/oauth2/token
    body: grant_type=client_credentials&scope=system%2FObservation.read
    headers:
      Authorization:
      - Basic {V}
      Content-Type:
      - application/x-www-form-urlencoded
  response:
    status: {code: 200, message: OK}
    body:
      string: '{"access_token":"<stripped>","token_type":"bearer","expires_in":300}'
version: 1
""",
    ),
    _t(
        "biobank/etl/tests/cassettes/lims_sample_search.yaml",
        "h16_redacted",
        False,
        r"""
interactions:
- request:
    method: GET
    uri: https://lims.bri.brenvik-uh.no/api/v1/samples?project=HUNT-REG&limit=50
    headers:
      Authorization:
      - Bearer {V}
      X-Api-Key:
      - {V2}
  response:
    status: {code: 200, message: OK}
    body:
      string: '{"items":[],"total":0}'
version: 1
""",
    ),
    _t(
        "ops/intranet/settings/production.py",
        "h16_django_key",
        True,
        r"""
from .base import *  # noqa: F403

DEBUG = False
ALLOWED_HOSTS = ["intranett.brenvik-uh.no"]
SECRET_KEY = "{V}"
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
DATABASES["default"]["HOST"] = "intranett-db.brenvik-uh.no"  # noqa: F405
""",
    ),
    _t(
        "ops/intranet/fixtures/users.json",
        "h16_pbkdf2",
        False,
        r"""
[
  {
    "model": "auth.user",
    "pk": 1,
    "fields": {"username": "intranett-admin", "password": "{V}", "is_superuser": true}
  },
  {
    "model": "auth.user",
    "pk": 2,
    "fields": {"username": "redaktor", "password": "{V2}", "is_superuser": false}
  }
]
""",
    ),
    _t(
        "ops/dicom-router/appsettings.Production.json",
        "h16_servicebus_conn",
        True,
        r"""
{
  "Router": {
    "LocalAet": "BVKROUTER2",
    "ListenPort": 11112
  },
  "Events": {
    "ServiceBus": "{V}",
    "Topic": "study-received"
  },
  "Logging": { "LogLevel": { "Default": "Information" } }
}
""",
    ),
    _t(
        "docs/CHANGELOG.md",
        "h16_git_sha",
        False,
        r"""
# Endringslogg - integrasjonsplattformen

## 2025.02
- Mirth 4.5.2, ny LIS-kanal for Tartu ({V})
- FHIR-gateway: retting av paginering i `_revinclude` ({V2})

## 2025.01
- HelseID: byttet til private_key_jwt ({V3})
""",
    ),
    _t(
        "deploy/k8s/overlays/prod/kustomization.yaml",
        "h16_image_digest",
        False,
        r"""
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: integrasjon
resources:
  - ../../base
images:
  - name: harbor.brenvik-uh.no/integrasjon/fhir-gateway
    digest: {V}
  - name: harbor.brenvik-uh.no/integrasjon/hl7-bridge
    digest: {V2}
""",
    ),
    _t(
        "it-ops/citrix/CitrixProbe.exe.config",
        "h16_dpapi",
        False,
        r"""
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <appSettings>
    <add key="StoreUrl" value="https://citrix.brenvik-uh.no/Citrix/BrenvikWeb/" />
    <add key="ProbeUser" value="AD\svc_citrix_probe" />
    <!-- DPAPI (LocalMachine) - kan bare dekrypteres på probe-serveren -->
    <add key="ProbePassword" value="{V}" />
  </appSettings>
</configuration>
""",
    ),
    _t(
        "bri-ml/tests/test_client.py",
        "h16_fake_test",
        False,
        r"""
import pytest

from bri_ml.client import SummaryClient


@pytest.fixture
def client(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "{V}")
    return SummaryClient(base_url="http://127.0.0.1:9999")


def test_refuses_identifiable_text(client):
    with pytest.raises(ValueError):
        client.summarise("Pasient Kari Nordmann, f. 01.01.1980")
""",
    ),
    _t(
        "patient-app/android/app/src/main/res/values-nb/strings.xml",
        "h16_i18n_nb",
        False,
        r"""
<?xml version="1.0" encoding="utf-8"?>
<resources>
    <string name="app_name">Brenvik Pasient</string>
    <string name="login_error">{V}</string>
    <string name="password_hint">{V2}</string>
    <string name="password_label">Passord</string>
</resources>
""",
    ),
]

TEMPLATES += [
    _t(
        "docs/wiki/.github/workflows/sync-wiki.yml",
        "h16_github_fine",
        True,
        r"""
name: sync-wiki
on:
  schedule:
    - cron: "30 4 * * *"
jobs:
  sync:
    runs-on: ubuntu-latest
    env:
      # fine-grained token for brenvik-uh/it-wiki (contents: write), made by Ola 2024-08
      WIKI_TOKEN: {V}
    steps:
      - uses: actions/checkout@v4
      - run: |
          git clone "https://oauth2:${WIKI_TOKEN}@github.com/brenvik-uh/it-wiki.git" wiki
          rsync -a --delete docs/ wiki/docs/
          cd wiki && git add -A && git commit -m "sync $(date +%F)" && git push || true
""",
    ),
    _t(
        "integrations/tests/test_github_sync.py",
        "h16_fake_test",
        False,
        r"""
import responses

from mirth_backup.github import push_export


@responses.activate
def test_push_uses_token_header():
    responses.add(responses.PUT, "https://api.github.com/repos/brenvik-uh/mirth-channels/contents/x.xml")
    push_export("x.xml", b"<channel/>", token="{V}")
    assert responses.calls[0].request.headers["Authorization"] == "Bearer {V}"
""",
    ),
]
