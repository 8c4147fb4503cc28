"""Blind part ``heldout13``: Calderic Mutual, a fictional mid-size insurance group (motor, home,
travel and pet cover) and its outsourced partners. Written blind (without seeing the scanner, its
rules, its output or other parts' templates beyond one example of layout) and held out: only its
totals are ever reported, and it is never edited to fit results.

Files are in the shapes of Calderic's repositories: the Java policy administration system
(Spring Boot, Maven settings, Tomcat, Liquibase, JKS keystores, JUnit tests), the .NET claims
platform (appsettings, web.config with machineKey, EF Core, Service Bus, xUnit tests), the PHP
broker portal (Laravel ``.env``, Symfony parameters, Composer auth, PHPUnit), actuarial and
pricing code in Python and R (notebooks, ``.Renviron``, odbc/DBI connections, Posit Connect,
Snowflake and Databricks clients), SAS programs and autoexec files, SQL scripts, Salesforce Apex
classes, Named Credentials and sfdx config for the call centre CRM, the mobile app backend in
Node/TypeScript, Kotlin/Android and Swift/iOS apps (Gradle properties, plists, Firebase config),
PowerShell and Bash ops scripts, mainframe-adjacent batch (JCL with RACF job cards, FTP and DB2
steps, copybook-shaped config records), Terraform, Helm values and Kubernetes manifests,
Jenkins and GitHub Actions pipelines, Dockerfiles and Compose, and the partner integrations
(the claims-handling TPA's SFTP drops, the telematics box vendor's API, the print-and-mail
house's upload feed). Docs and runbooks are in English, Spanish, Polish and Italian, with chat
exports, handover notes and incident write-ups.

Credentials (positive) are passwords of every strength (weak words, vendor defaults on real
internal hosts, RACF job-card passwords), service tokens in their real formats (GitHub with CRC
checksums, Salesforce session ids, Azure keys and connection strings, JFrog, Octopus, Sonar,
Okta, Twilio, Stripe, FCM and more), unencrypted private keys built with ``cryptography``
(PKCS#1, PKCS#8, SEC1, OpenSSH and PuTTY PPK v3 with a valid MAC), URI
credentials, Basic-auth strings, webhook URLs, credentials in prose, CLI arguments, tests,
commented-out lines and ``${VAR:-x}`` defaults. Look-alikes (negative) sit in the same kinds of
files under the same key names: references to environment, vaults, CI secrets and templates,
placeholders and redactions in four languages, password hashes (bcrypt, ASP.NET Identity,
SHA-256 digests), values encrypted at rest (Jasypt, SOPS, Ansible Vault, sealed secrets, KMS
blobs, Jenkins), public certificates and keys, identifiers shaped like secrets (policy and claim
numbers, VINs, IMEIs, Salesforce record ids, Twilio account SIDs, tenant ids, digests), UI and
i18n text about passwords, documented example credentials, credentials on documentation hosts,
role-word pairs and test values that say they are fake.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import string
import struct
import textwrap
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
PW_SYMBOLS = "!#%*-_=+.@"
CRYPT64 = "./" + ALNUM
VIN_CHARS = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
SMALL_PRIMES = [p for p in range(3, 2000) if all(p % d for d in range(2, int(p**0.5) + 1))]


def _ssh_str(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


class Heldout13Values(evalset.Values):
    """Value generators of the heldout13 part; every slot generator's name starts with ``h13_``."""

    def __init__(self, seed: int, flavour: str) -> None:
        super().__init__(seed, flavour)
        self.words = [
            "premium",
            "deductible",
            "actuary",
            "claimant",
            "indemnity",
            "underwriter",
            "tariff",
            "renewal",
            "adjuster",
            "hailstone",
            "caravan",
            "spaniel",
            "odometer",
            "lighthouse",
            "windscreen",
            "excess",
        ]
        self.users = [
            "pas_app",
            "claims_svc",
            "broker_portal",
            "pricing_ro",
            "actuarial",
            "telematics",
            "printmail",
            "tpa_drop",
            "ivr_app",
            "mobile_api",
            "batch01",
            "sas_etl",
        ]

    # ------------------------------------------------------------------ helpers (not slots)
    def _b64(self, n: int, urlsafe: bool = False, pad: bool = True) -> str:
        raw = self.rng.randbytes(n)
        text = (base64.urlsafe_b64encode(raw) if urlsafe else base64.b64encode(raw)).decode()
        return text if pad else text.rstrip("=")

    def _crc_token(self, prefix: str) -> str:
        body = self.s(30, ALNUM)
        crc = zlib.crc32(body.encode())
        check = ""
        while crc:
            crc, rest = divmod(crc, 62)
            check = B62[rest] + check
        return f"{prefix}_{body}{check.rjust(6, '0')}"

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _armor(self, label: str, der: bytes, width: int = 64) -> str:
        body = base64.b64encode(der).decode()
        rows = [body[i : i + width] for i in range(0, len(body), width)]
        return f"-----BEGIN {label}-----\n" + "\n".join(rows) + f"\n-----END {label}-----"

    def _is_prime(self, n: int) -> bool:
        if any(n % p == 0 for p in SMALL_PRIMES):
            return n in SMALL_PRIMES
        d, r = n - 1, 0
        while d % 2 == 0:
            d //= 2
            r += 1
        for _ in range(12):
            a = self.rng.randrange(2, n - 2)
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

    def _prime(self, bits: int) -> int:
        while True:
            n = self.rng.getrandbits(bits) | (3 << (bits - 2)) | 1
            if (n - 1) % 65537 and self._is_prime(n):
                return n

    def _rsa(self, bits: int = 2048) -> rsa.RSAPrivateKey:
        e = 65537
        while True:
            p, q = self._prime(bits // 2), self._prime(bits // 2)
            if p != q:
                break
        if p < q:
            p, q = q, p
        phi = (p - 1) * (q - 1)
        d = pow(e, -1, phi)
        numbers = rsa.RSAPrivateNumbers(
            p=p,
            q=q,
            d=d,
            dmp1=d % (p - 1),
            dmq1=d % (q - 1),
            iqmp=pow(q, -1, p),
            public_numbers=rsa.RSAPublicNumbers(e, p * q),
        )
        return numbers.private_key()

    def _ec(self) -> ec.EllipticCurvePrivateKey:
        curve = ec.SECP256R1()
        order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
        return ec.derive_private_key(self.rng.randrange(1, order), curve)

    def _ed(self) -> ed25519.Ed25519PrivateKey:
        return ed25519.Ed25519PrivateKey.from_private_bytes(self.rng.randbytes(32))

    def _ed_blobs(self) -> tuple[bytes, bytes, bytes]:
        key = self._ed()
        priv = key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        pub = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        blob = _ssh_str(b"ssh-ed25519") + _ssh_str(pub)
        return priv, pub, blob

    def _comment(self) -> str:
        host = self.pick(
            ["jump01", "batch-lnx02", "sas-grid03", "ci-agent07", "laptop", "tpa-sftp"]
        )
        return f"{self.pick(self.users)}@{host}"

    # ------------------------------------------------------------------ positives: passwords
    def h13_pw(self) -> str:
        shape = self.rng.randrange(6)
        word = self.pick(self.words)
        if shape == 0:
            return word.capitalize() + str(self.rng.randrange(10, 9999)) + self.pick(list("!#%*.+"))
        if shape == 1:
            return self.s(1, string.ascii_letters) + self.s(
                self.rng.randrange(12, 20), ALNUM + PW_SYMBOLS
            )
        if shape == 2:
            other = self.pick([w for w in self.words if w != word])
            return f"{word.capitalize()}-{other.capitalize()}-{self.s(2, DIGITS)}"
        if shape == 3:
            return "Cm" + self.s(12, ALNUM) + self.pick(list("!#%"))
        if shape == 4:
            return self.s(18, ALNUM)
        leet = word.replace("a", "@").replace("o", "0").replace("e", "3")
        return leet[0].upper() + leet[1:] + "$" + self.s(3, DIGITS)

    def h13_weak_pw(self) -> str:
        shape = self.rng.randrange(5)
        if shape == 0:
            return self.pick(
                [
                    "Welcome1",
                    "Password1!",
                    "admin123",
                    "calderic1",
                    "Calderic!",
                    "Qwerty123!",
                    "letmein",
                    "insurance1",
                    "Haslo123",
                    "Contrasena1",
                    "Passw0rd",
                    "claims2024",
                    "motor123",
                ]
            )
        if shape == 1:
            return "Calderic" + str(self.rng.randrange(2016, 2027)) + self.pick(["", "!", "#", "$"])
        if shape == 2:
            return self.pick(self.words) + self.pick(["1", "123", "2025", "!", ""])
        if shape == 3:
            return self.pick(
                ["Verano", "Invierno", "Lato", "Zima", "Estate", "Inverno", "Summer", "Autumn"]
            ) + str(self.rng.randrange(2019, 2027))
        return self.pick(["dragon", "football", "sunshine", "princess", "tigger", "rabbit"])

    def h13_default_tomcat(self) -> str:
        return self.pick(["tomcat", "s3cret", "admin", "manager"])

    def h13_default_pg(self) -> str:
        return self.pick(["postgres", "admin", "root"])

    def h13_default_rabbit(self) -> str:
        return "guest"

    def h13_default_grafana(self) -> str:
        return self.pick(["admin", "prom-operator"])

    def h13_url_pw(self) -> str:
        if self.rng.randrange(2):
            return self.pick(self.words).capitalize() + self.s(4, DIGITS)
        return self.s(1, string.ascii_letters) + self.s(self.rng.randrange(12, 21), ALNUM + "-_.")

    def h13_racf_pw(self) -> str:
        return self.s(1, string.ascii_uppercase) + self.s(self.rng.randrange(5, 8), UPNUM + "@#$")

    def h13_b64_pw(self) -> str:
        return base64.b64encode(self.h13_pw().encode()).decode()

    def h13_basic_b64(self) -> str:
        user = self.pick([*self.users, "svc-jenkins", "calderic-deploy"])
        return base64.b64encode(f"{user}:{self.h13_pw()}".encode()).decode()

    def h13_sas001(self) -> str:
        return "{SAS001}" + base64.b64encode(self.h13_pw().encode()).decode()

    def h13_sf_security_token(self) -> str:
        return self.s(self.rng.choice([24, 25]), ALNUM)

    def h13_sf_pw_token(self) -> str:
        return self.h13_url_pw() + self.s(24, ALNUM)

    # ------------------------------------------------------------------ positives: tokens
    def h13_github(self) -> str:
        return self._crc_token(self.pick(["ghp", "ghp", "ghp", "gho", "ghs"]))

    def h13_github_fine(self) -> str:
        return f"github_pat_11{self.s(20, UPNUM)}_{self.s(59, ALNUM)}"

    def h13_gitlab(self) -> str:
        return "glpat-" + self.s(20, URLSAFE)

    def h13_npm(self) -> str:
        return self._crc_token("npm")

    def h13_slack_bot(self) -> str:
        return (
            f"{self.pick(['xoxb', 'xoxb', 'xoxp'])}-{self.s(12, DIGITS)}-{self.s(13, DIGITS)}-"
            f"{self.s(24, ALNUM)}"
        )

    def h13_slack_webhook(self) -> str:
        return (
            f"https://hooks.slack.com/services/T{self.s(10, UPNUM)}/B{self.s(10, UPNUM)}/"
            f"{self.s(24, ALNUM)}"
        )

    def h13_teams_webhook(self) -> str:
        return (
            f"https://calderic.webhook.office.com/webhookb2/{self._uuid()}@{self._uuid()}"
            f"/IncomingWebhook/{self.s(32, HEX)}/{self._uuid()}/V2{self.s(43, URLSAFE)}"
        )

    def h13_aws_secret(self) -> str:
        return self.s(1, ALNUM) + self.s(39, ALNUM + "/+")

    def h13_aws_id_pair(self) -> str:
        return (
            "aws_access_key_id = AKIA"
            + self.s(16, string.ascii_uppercase + "234567")
            + "\naws_secret_access_key = "
            + self.h13_aws_secret()
        )

    def h13_aws_env_pair(self) -> str:
        return (
            "AWS_ACCESS_KEY_ID=AKIA"
            + self.s(16, string.ascii_uppercase + "234567")
            + "\nAWS_SECRET_ACCESS_KEY="
            + self.h13_aws_secret()
        )

    def h13_aws_tf_pair(self) -> str:
        return (
            'access_key = "AKIA'
            + self.s(16, string.ascii_uppercase + "234567")
            + '"\nsecret_key = "'
            + self.h13_aws_secret()
            + '"'
        )

    def h13_azure_storage_key(self) -> str:
        return self._b64(64)

    def h13_azure_conn(self) -> str:
        account = self.pick(["stcmclaimsprod", "stcmdocsprd", "stcmpricing01", "stcmprintfeed"])
        return (
            f"DefaultEndpointsProtocol=https;AccountName={account};"
            f"AccountKey={self._b64(64)};EndpointSuffix=core.windows.net"
        )

    def h13_servicebus_conn(self) -> str:
        ns = self.pick(["sb-cm-claims-prd", "sb-cm-fnol-uat", "sb-cm-payments"])
        return (
            f"Endpoint=sb://{ns}.servicebus.windows.net/;SharedAccessKeyName="
            f"{self.pick(['RootManageSharedAccessKey', 'claims-sender', 'fnol-listener'])};"
            f"SharedAccessKey={self._b64(32)}"
        )

    def h13_azure_client_secret(self) -> str:
        return self.s(3, ALNUM) + self.s(1, DIGITS) + "Q~" + self.s(34, ALNUM + "_~.-")

    def h13_ado_pat(self) -> str:
        return self.s(52, "abcdefghijklmnopqrstuvwxyz234567")

    def h13_stripe(self) -> str:
        return self.pick(["sk_live_", "sk_live_", "rk_live_"]) + self.s(
            self.rng.choice([24, 99]), ALNUM
        )

    def h13_twilio_token(self) -> str:
        return self.s(32, HEX)

    def h13_sendgrid(self) -> str:
        return f"SG.{self.s(22, URLSAFE)}.{self.s(43, URLSAFE)}"

    def h13_datadog_key(self) -> str:
        return self.s(self.rng.choice([32, 40]), HEX)

    def h13_newrelic(self) -> str:
        return "NRAK-" + self.s(27, UPNUM)

    def h13_sf_consumer_secret(self) -> str:
        return self.s(64, HEXU)

    def h13_sf_access_token(self) -> str:
        return f"00D{self.s(12, ALNUM)}!AQ{self.s(4, ALNUM)}{self.s(92, ALNUM + '._')}"

    def h13_google_key(self) -> str:
        return "AIza" + self.pick(["Sy", "Sy", "SC", "Sz"]) + self.s(33, URLSAFE)

    def h13_fcm_server_key(self) -> str:
        return f"AAAA{self.s(7, URLSAFE)}:APA91b{self.s(134, URLSAFE)}"

    def h13_jfrog_key(self) -> str:
        return "AKCp8" + self.s(68, ALNUM)

    def h13_jfrog_ref(self) -> str:
        raw = f"reftkn:01:{self.rng.randrange(1_750_000_000, 1_900_000_000)}:{self.s(27, ALNUM)}"
        return base64.b64encode(raw.encode()).decode().rstrip("=")

    def h13_tfc_token(self) -> str:
        return f"{self.s(14, ALNUM)}.atlasv1.{self.s(67, ALNUM)}"

    def h13_vault_token(self) -> str:
        return (
            "hvs." + self.s(24, ALNUM)
            if self.rng.randrange(2)
            else "hvs.CAESI" + self.s(86, URLSAFE)
        )

    def h13_octopus(self) -> str:
        return "API-" + self.s(self.rng.choice([26, 27, 32]), UPNUM)

    def h13_jenkins_token(self) -> str:
        return "11" + self.s(32, HEX)

    def h13_sonar(self) -> str:
        return self.pick(["squ_", "sqp_", "sqa_"]) + self.s(40, HEX)

    def h13_okta(self) -> str:
        return "00" + self.s(40, URLSAFE)

    def h13_docker_pat(self) -> str:
        return "dckr_pat_" + self.s(27, URLSAFE)

    def h13_databricks(self) -> str:
        return "dapi" + self.s(32, HEX) + self.pick(["", "-2", "-3"])

    def h13_posit_key(self) -> str:
        return self.s(32, ALNUM)

    def h13_telematics_key(self) -> str:
        return "tlx_live_" + self.s(40, ALNUM)

    def h13_printmail_key(self) -> str:
        return "pm-" + self.s(8, HEX) + "-" + self.s(40, ALNUM)

    def h13_tpa_api_key(self) -> str:
        return self.s(8, HEXU) + "-" + self.s(4, HEXU) + "." + self.s(36, ALNUM)

    def h13_jwt(self) -> str:
        def part(obj: dict[str, object]) -> str:
            import json

            raw = json.dumps(obj, separators=(",", ":")).encode()
            return base64.urlsafe_b64encode(raw).decode().rstrip("=")

        header = part({"alg": self.pick(["HS256", "RS256"]), "typ": "JWT"})
        iat = 1_735_000_000 + self.rng.randrange(10**7)
        payload = part(
            {
                "sub": self.pick(self.users),
                "iss": self.pick(
                    ["https://auth.calderic.co.uk", "claims-platform", "broker-portal"]
                ),
                "scope": self.pick(["claims:write", "policy:read quote:write", "admin"]),
                "iat": iat,
                "exp": iat + self.pick([3600 * 24 * 365, 3600 * 24 * 3650]),
            }
        )
        sig = self._b64(self.rng.choice([32, 256]), urlsafe=True, pad=False)
        return f"{header}.{payload}.{sig}"

    def h13_hex_secret(self) -> str:
        return self.s(self.rng.choice([32, 64]), HEX)

    def h13_b64_secret(self) -> str:
        return self._b64(self.rng.choice([32, 48]))

    def h13_laravel_key(self) -> str:
        return "base64:" + self._b64(32)

    def h13_machine_key(self) -> str:
        return self.s(self.rng.choice([64, 128]), HEXU)

    def h13_k8s_b64_pw(self) -> str:
        return base64.b64encode(self.h13_pw().encode()).decode()

    def h13_api_key(self) -> str:
        return self.pick([self.s(32, ALNUM), self.s(40, HEX), self.s(48, URLSAFE)])

    # ------------------------------------------------------------------ positives: private keys
    def h13_rsa_pem(self) -> str:
        key = self._rsa(self.rng.choice([2048, 2048, 3072]))
        der = key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        return self._armor("RSA PRIVATE KEY", der)

    def h13_pkcs8_pem(self) -> str:
        key = self._rsa(2048) if self.rng.randrange(2) else self._ec()
        der = key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return self._armor("PRIVATE KEY", der)

    def h13_ec_pem(self) -> str:
        der = self._ec().private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        return self._armor("EC PRIVATE KEY", der)

    def h13_p8_key(self) -> str:
        der = self._ec().private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return self._armor("PRIVATE KEY", der)

    def h13_openssh_key(self) -> str:
        priv, pub, blob = self._ed_blobs()
        check = self.rng.getrandbits(32)
        inner = struct.pack(">II", check, check)
        inner += _ssh_str(b"ssh-ed25519") + _ssh_str(pub) + _ssh_str(priv + pub)
        inner += _ssh_str(self._comment().encode())
        pad = 1
        while len(inner) % 8:
            inner += bytes([pad])
            pad += 1
        data = b"openssh-key-v1\x00" + _ssh_str(b"none") + _ssh_str(b"none") + _ssh_str(b"")
        data += struct.pack(">I", 1) + _ssh_str(blob) + _ssh_str(inner)
        return self._armor("OPENSSH PRIVATE KEY", data, 70)

    def h13_ppk(self) -> str:
        priv, _pub, blob = self._ed_blobs()
        day = datetime.date(2022, 1, 1) + datetime.timedelta(days=self.rng.randrange(1200))
        comment = f"eddsa-key-{day:%Y%m%d}"
        priv_blob = _ssh_str(priv)
        mac_data = (
            _ssh_str(b"ssh-ed25519")
            + _ssh_str(b"none")
            + _ssh_str(comment.encode())
            + _ssh_str(blob)
            + _ssh_str(priv_blob)
        )
        mac = hmac.new(b"", mac_data, hashlib.sha256).hexdigest()
        pub_b64 = base64.b64encode(blob).decode()
        pub_lines = [pub_b64[i : i + 64] for i in range(0, len(pub_b64), 64)]
        return "\n".join(
            [
                "PuTTY-User-Key-File-3: ssh-ed25519",
                "Encryption: none",
                f"Comment: {comment}",
                f"Public-Lines: {len(pub_lines)}",
                *pub_lines,
                "Private-Lines: 1",
                base64.b64encode(priv_blob).decode(),
                f"Private-MAC: {mac}",
            ]
        )

    def h13_gcp_sa_key(self) -> str:
        der = self._rsa(2048).private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return self._armor("PRIVATE KEY", der).replace("\n", "\\n") + "\\n"

    # ------------------------------------------------------------------ negatives: references
    def h13_ref_java(self) -> str:
        return self.pick(
            [
                "${DB_PASSWORD}",
                "${PAS_DB_PASSWORD:}",
                "${vault.pas.db.password}",
                "${spring.datasource.password}",
                "#{systemEnvironment['PAS_KEYSTORE_PASS']}",
                "${env.NEXUS_PASSWORD}",
            ]
        )

    def h13_ref_dotnet(self) -> str:
        return self.pick(
            [
                'Configuration["ClaimsDb:Password"]',
                'Environment.GetEnvironmentVariable("CLAIMS_DB_PASSWORD")',
                "_options.Value.ClientSecret",
                'await _secretClient.GetSecretAsync("claims-sb-key")',
                'builder.Configuration.GetConnectionString("ClaimsDb")',
            ]
        )

    def h13_ref_dotnet_cfg(self) -> str:
        return self.pick(
            [
                "@Microsoft.KeyVault(SecretUri=https://kv-cm-claims-prd.vault.azure.net/secrets/claimsdb-password/)",
                "@Microsoft.KeyVault(VaultName=kv-cm-claims-uat;SecretName=servicebus-key)",
                "#{ClaimsDbPassword}#",
                "__CLAIMS_DB_PASSWORD__",
                "$(ClaimsDbPassword)",
            ]
        )

    def h13_ref_php(self) -> str:
        return self.pick(
            [
                "env('DB_PASSWORD')",
                "getenv('BROKER_API_SECRET')",
                "$_ENV['MAIL_PASSWORD']",
                "%env(DATABASE_PASSWORD)%",
                "config('services.quotes.secret')",
                "$_SERVER['TPA_SFTP_PASS']",
            ]
        )

    def h13_ref_py(self) -> str:
        return self.pick(
            [
                'os.environ["PRICING_DB_PASSWORD"]',
                'os.getenv("SNOWFLAKE_PASSWORD")',
                'dbutils.secrets.get(scope="pricing", key="snowflake-pw")',
                'keyring.get_password("calderic-pricing", "svc_pricing")',
                "settings.telematics_api_key",
                'Variable.get("tpa_sftp_password")',
            ]
        )

    def h13_ref_r(self) -> str:
        return self.pick(
            [
                'Sys.getenv("PRICING_DB_PWD")',
                'keyring::key_get("pricing-dw", "svc_pricing")',
                'config::get("dw")$pwd',
                'rstudioapi::askForPassword("Pricing DW password")',
                'Sys.getenv("CONNECT_API_KEY")',
            ]
        )

    def h13_ref_sas(self) -> str:
        return self.pick(
            [
                '"&dwpass"',
                '"%sysget(SAS_DW_PASSWORD)"',
                "&ora_pw",
                '"%superq(dbpw)"',
            ]
        )

    def h13_ref_node(self) -> str:
        return self.pick(
            [
                "process.env.APP_DB_PASSWORD",
                "process.env['FCM_SERVER_KEY'] ?? ''",
                "config.get<string>('telematics.apiKey')",
                "await secrets.get('mobile-api/jwt-secret')",
                "this.configService.getOrThrow('PRINTMAIL_API_KEY')",
            ]
        )

    def h13_ref_ps(self) -> str:
        return self.pick(
            [
                "$env:CLAIMS_SQL_PASSWORD",
                "(Get-Secret -Name ClaimsSqlSa -AsPlainText)",
                "$cred.GetNetworkCredential().Password",
                "(Get-AzKeyVaultSecret -VaultName kv-cm-ops -Name sftp-tpa -AsPlainText)",
                "(Read-Host -AsSecureString -Prompt 'Password')",
            ]
        )

    def h13_ref_sh(self) -> str:
        return self.pick(
            [
                "$(vault kv get -field=password secret/batch/tpa-sftp)",
                "${TPA_SFTP_PASSWORD:?not set}",
                "$(cat /run/secrets/db_password)",
                '"$PRINTMAIL_PASS"',
                "$(aws secretsmanager get-secret-value --secret-id prod/pas/db --query SecretString --output text)",
                "$(op read op://Ops/tpa-sftp/password)",
            ]
        )

    def h13_ref_ci(self) -> str:
        return self.pick(
            [
                "${{ secrets.NEXUS_PASSWORD }}",
                "${{ secrets.SONAR_TOKEN }}",
                "credentials('nexus-deploy')",
                "${env.ARTIFACTORY_TOKEN}",
                "$(SF_AUTH_URL)",
                "${{ vars.SNOWFLAKE_USER }}",
            ]
        )

    def h13_ref_jenkins(self) -> str:
        return self.pick(
            ["$SONAR_TOKEN", "${env.SONAR_TOKEN}", "$NEXUS_PSW", "${params.TOKEN}", "$P"]
        )

    def h13_ref_helm(self) -> str:
        return self.pick(
            [
                "{{ .Values.db.password }}",
                '{{ required "db.password is required" .Values.db.password }}',
                "{{ .Values.global.telematics.apiKey | quote }}",
                '{{ include "claims.secretName" . }}',
                "ref+vault://secret/data/claims/db#password",
            ]
        )

    def h13_ref_tf(self) -> str:
        return self.pick(
            [
                "var.sql_admin_password",
                "random_password.sql_admin.result",
                "data.azurerm_key_vault_secret.sql_admin.value",
                "data.aws_secretsmanager_secret_version.pas_db.secret_string",
                "sensitive(var.telematics_api_key)",
            ]
        )

    def h13_ref_apex(self) -> str:
        return self.pick(
            [
                "{!$Credential.Password}",
                "{!$Credential.UserName}",
                "Telematics_Settings__c.getOrgDefaults().Api_Key__c",
                "callout:TPA_Claims_API",
                "{!$Credential.OAuthToken}",
            ]
        )

    def h13_ref_jcl(self) -> str:
        return self.pick(["&PWD", "&FTPPASS", "&DB2PW", "*"])

    def h13_k8s_secret_name(self) -> str:
        return self.pick(
            ["claims-db-credentials", "pas-db", "broker-portal-env", "telematics-api", "regcred"]
        )

    def h13_vault_path(self) -> str:
        return self.pick(
            [
                "secret/data/claims/prod/db",
                "kv/pricing/snowflake",
                "arn:aws:secretsmanager:eu-west-2:"
                + self.s(12, DIGITS)
                + ":secret:prod/pas/db-"
                + self.s(6),
                "projects/cm-pricing/secrets/databricks-token/versions/latest",
                "https://kv-cm-claims-prd.vault.azure.net/secrets/claimsdb-password",
            ]
        )

    # ------------------------------------------------------------------ negatives: placeholders
    def h13_placeholder(self) -> str:
        return self.pick(
            [
                "<password>",
                "changeme",
                "CHANGE_ME",
                "xxxxxxxx",
                "********",
                "REPLACE_ME",
                "<tu-contraseña>",
                "TU_CONTRASENA_AQUI",
                "<hasło>",
                "WPISZ_HASLO",
                "<la-tua-password>",
                "INSERIRE_PASSWORD",
                "TBD",
                "<secret>",
                "your-password-here",
            ]
        )

    def h13_token_placeholder(self) -> str:
        return self.pick(
            [
                "<your-token>",
                "ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                "sk_live_xxxxxxxxxxxxxxxxxxxxxxxx",
                "YOUR_API_KEY",
                "<API_KEY>",
                "xoxb-your-bot-token",
                "AIzaSy...",
                "TOKEN_GOES_HERE",
                "INSERISCI_TOKEN",
                "<token-de-acceso>",
                "<klucz-api>",
            ]
        )

    def h13_redacted(self) -> str:
        return self.pick(
            [
                "[REDACTED]",
                "***",
                "****************",
                "<redacted>",
                "[ZREDAGOWANO]",
                "[OCULTO]",
                "[OSCURATO]",
                "•••••••••",
                "sk_live_****************",
                "(removed)",
            ]
        )

    def h13_fake(self) -> str:
        return self.pick(
            [
                "fake-password-for-tests",
                "not-a-real-secret",
                "test-only-dummy",
                "dummy_password_do_not_use",
                "unit-test-secret",
                "FAKE_TOKEN_FOR_TESTS",
                "fake-api-key",
                "mock-secret-123",
            ]
        )

    def h13_role_word(self) -> str:
        return self.pick(["password", "secret", "passwd", "pass", "token", "apikey", "pwd"])

    def h13_example_basic(self) -> str:
        return self.pick(
            [
                "QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
                base64.b64encode(b"user:password").decode(),
                base64.b64encode(b"username:password").decode(),
            ]
        )

    def h13_example_jwt(self) -> str:
        return (
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9l"
            "IiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
        )

    def h13_aws_example_pair(self) -> str:
        key_id = self.pick(["AKIAIOSFODNN7EXAMPLE", "AKIAI44QH8DHBEXAMPLE"])
        secret = self.pick(
            ["wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY"]
        )
        return f"aws_access_key_id = {key_id}\naws_secret_access_key = {secret}"

    def h13_doc_host(self) -> str:
        return self.pick(
            [
                "db.example.com",
                "sftp.example.net",
                "broker.example.org",
                "claims.test",
                "tpa.invalid",
                "pricing-dw.example",
                "localhost.test",
            ]
        )

    def h13_doc_url(self) -> str:
        scheme = self.pick(["postgresql", "sqlserver", "amqp", "sftp", "https", "mysql"])
        user = self.pick(["user", "alice", "demo", "usuario", "uzytkownik", "utente"])
        pw = self.pick(["password", "secret", self.pick(self.words) + self.s(2, DIGITS)])
        return f"{scheme}://{user}:{pw}@{self.h13_doc_host()}/demo"

    # ------------------------------------------------------------------ negatives: hashes, crypto
    def h13_bcrypt(self) -> str:
        return (
            self.pick(["$2a$", "$2b$", "$2y$"])
            + self.pick(["10", "12"])
            + "$"
            + self.s(53, CRYPT64)
        )

    def h13_aspnet_hash(self) -> str:
        raw = b"\x01" + struct.pack(">III", 1, 100000 if self.rng.randrange(2) else 10000, 16)
        return base64.b64encode(raw + self.rng.randbytes(48)).decode()

    def h13_enc_hex(self) -> str:
        return self.s(self.rng.choice([64, 96]), HEX)

    def h13_sha256(self) -> str:
        return hashlib.sha256(self.rng.randbytes(24)).hexdigest()

    def h13_sha1(self) -> str:
        return hashlib.sha1(self.rng.randbytes(24)).hexdigest()

    def h13_md5(self) -> str:
        return hashlib.md5(self.rng.randbytes(24)).hexdigest()

    def h13_image_digest(self) -> str:
        return "sha256:" + self.h13_sha256()

    def h13_sri(self) -> str:
        return "sha512-" + self._b64(64)

    def h13_jasypt(self) -> str:
        return f"ENC({self._b64(self.rng.choice([24, 32, 48]))})"

    def h13_sops(self) -> str:
        return (
            f"ENC[AES256_GCM,data:{self._b64(self.rng.randrange(12, 40))},"
            f"iv:{self._b64(32)},tag:{self._b64(16)},type:str]"
        )

    def h13_ansible_vault(self) -> str:
        body = (self.s(64, HEX) + "\n" + self.s(64, HEX)).encode().hex()
        body = body[: self.rng.randrange(320, 640)]
        rows = [body[i : i + 80] for i in range(0, len(body), 80)]
        return "$ANSIBLE_VAULT;1.1;AES256\n" + "\n".join(rows)

    def h13_sealed(self) -> str:
        return "AgB" + self._b64(self.rng.choice([300, 360, 420]))

    def h13_kms_blob(self) -> str:
        return "AQICAHh" + self._b64(self.rng.choice([150, 180]))

    def h13_jenkins_enc(self) -> str:
        return "{AQAAABAAAAAQ" + self._b64(36) + "}"

    def h13_dpapi(self) -> str:
        return "AQAAANCMnd8BFdERjHoAwE/Cl+sBAAAA" + self._b64(self.rng.choice([150, 200]))

    # ------------------------------------------------------------------ negatives: public material
    def h13_cert_pem(self) -> str:
        key = self._rsa(2048)
        cn = self.pick(
            [
                "claims-api.calderic.co.uk",
                "broker.calderic.co.uk",
                "sftp.tpa-partner.co.uk",
                "telematics-ingest.calderic.co.uk",
                "Calderic Mutual Issuing CA 02",
            ]
        )
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "GB"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Calderic Mutual"),
                x509.NameAttribute(NameOID.COMMON_NAME, cn),
            ]
        )
        start = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(
            days=self.rng.randrange(0, 600)
        )
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(self.rng.getrandbits(120) | 1)
            .not_valid_before(start)
            .not_valid_after(start + datetime.timedelta(days=398))
            .sign(key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.PEM).decode().strip()

    def h13_cert_b64(self) -> str:
        return "".join(self.h13_cert_pem().splitlines()[1:-1])

    def h13_pubkey_pem(self) -> str:
        key = self._ec() if self.rng.randrange(2) else self._rsa(2048)
        return (
            key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
            .strip()
        )

    def h13_ssh_pub(self) -> str:
        _priv, _pub, blob = self._ed_blobs()
        return f"ssh-ed25519 {base64.b64encode(blob).decode()} {self._comment()}"

    def h13_pgp_pub(self) -> str:
        body = base64.b64encode(b"\x99\x01\x8d\x04" + self.rng.randbytes(390)).decode()
        rows = [body[i : i + 64] for i in range(0, len(body), 64)]
        crc = "=" + self._b64(3)
        return (
            "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n"
            + "\n".join(rows)
            + "\n"
            + crc
            + "\n-----END PGP PUBLIC KEY BLOCK-----"
        )

    def h13_fingerprint(self) -> str:
        raw = self.rng.randbytes(self.rng.choice([20, 32]))
        return ":".join(f"{b:02X}" for b in raw)

    def h13_stripe_pk(self) -> str:
        return "pk_live_" + self.s(self.rng.choice([24, 99]), ALNUM)

    # ------------------------------------------------------------------ negatives: identifiers
    def h13_uuid(self) -> str:
        return self._uuid()

    def h13_policy_no(self) -> str:
        line = self.pick(["MOT", "HOM", "TRV", "PET"])
        return f"CM-{line}-{self.rng.randrange(2019, 2027)}-{self.s(7, DIGITS)}"

    def h13_claim_no(self) -> str:
        return f"CLM{self.s(2, string.ascii_uppercase)}{self.s(9, DIGITS)}"

    def h13_vin(self) -> str:
        return self.pick(["WVW", "WF0", "SAJ", "VF1", "ZFA", "TMB"]) + self.s(14, VIN_CHARS)

    def h13_imei(self) -> str:
        body = "35" + self.s(12, DIGITS)
        total = 0
        for i, ch in enumerate(body):
            d = int(ch)
            if i % 2:
                d *= 2
                d = d - 9 if d > 9 else d
            total += d
        return body + str((10 - total % 10) % 10)

    def h13_sf_id(self) -> str:
        prefix = self.pick(["001", "003", "500", "a0X", "005", "00D"])
        return prefix + self.s(12, ALNUM) + (self.s(3, UPNUM) if self.rng.randrange(2) else "")

    def h13_twilio_sid(self) -> str:
        return self.pick(["AC", "AC", "MG", "PN"]) + self.s(32, HEX)

    def h13_aws_account(self) -> str:
        return self.s(12, DIGITS)

    def h13_google_client_id(self) -> str:
        return f"{self.s(12, DIGITS)}-{self.s(32, LOWNUM)}.apps.googleusercontent.com"

    def h13_apple_id(self) -> str:
        return self.s(10, UPNUM)

    def h13_okta_client_id(self) -> str:
        return "0oa" + self.s(17, ALNUM)

    def h13_number(self) -> str:
        return self.pick(["8", "12", "14", "16", "90", "365", "3600", "86400"])

    # ------------------------------------------------------------------ negatives: text
    def h13_i18n(self) -> str:
        return self.pick(
            [
                "La contraseña debe tener al menos 12 caracteres",
                "Contraseña incorrecta. Inténtelo de nuevo.",
                "¿Ha olvidado su contraseña?",
                "Hasło musi mieć co najmniej 12 znaków",
                "Nieprawidłowe hasło lub login",
                "Zapomniałeś hasła?",
                "La password deve contenere almeno 12 caratteri",
                "Password errata, riprova",
                "Hai dimenticato la password?",
                "Your password has expired. Please choose a new one.",
                "Enter the one-time code we sent to your phone",
                "Il token di accesso è scaduto",
                "El token de acceso ha caducado",
                "Token dostępu wygasł",
            ]
        )

    def h13_i18n_es(self) -> str:
        return self.pick(
            [
                "La contraseña debe tener al menos 12 caracteres",
                "Contraseña incorrecta. Inténtelo de nuevo.",
                "¿Ha olvidado su contraseña?",
                "Las contraseñas no coinciden",
                "Su contraseña ha caducado",
                "El token de acceso ha caducado",
            ]
        )

    def h13_i18n_pl(self) -> str:
        return self.pick(
            [
                "Hasło musi mieć co najmniej 12 znaków",
                "Nieprawidłowe hasło lub login",
                "Zapomniałeś hasła?",
                "Hasła nie są zgodne",
                "Hasło wygasło. Ustaw nowe hasło.",
                "Token dostępu wygasł",
            ]
        )

    def h13_i18n_it(self) -> str:
        return self.pick(
            [
                "La password deve contenere almeno 12 caratteri",
                "Password errata, riprova",
                "Hai dimenticato la password?",
                "Le password non coincidono",
                "La password è scaduta",
                "Il token di accesso è scaduto",
            ]
        )

    def h13_prose_neg(self) -> str:
        return self.pick(
            [
                "stored in Key Vault, ask the platform team",
                "in 1Password under 'TPA SFTP (prod)'",
                "rotated monthly by the vault agent",
                "en el gestor de secretos (Vault), no aquí",
                "w sejfie Vault, nie w repozytorium",
                "nel Key Vault, non nel repository",
                "see the CyberArk safe CM-BATCH",
            ]
        )


def T(path: str, kind: str, positive: bool, text: str) -> evalset.Template:
    """A template: its text is dedented and loses its first newline."""
    return (path, textwrap.dedent(text).lstrip("\n"), kind, positive)


VALUES = Heldout13Values

TEMPLATES: list[evalset.Template] = []

# ====================================================================== policy admin (Java)
TEMPLATES += [
    T(
        "policy-admin/pas-core/src/main/resources/application-prod.yml",
        "h13_pw",
        True,
        r"""
        # Calderic PAS - production profile
        # Owner: policy-admin squad (#pas-dev). Changes need a CAB ticket.
        server:
          port: 8443
          ssl:
            enabled: true
            key-store: classpath:keystore/pas-prod.p12
            key-store-type: PKCS12
            key-store-password: {V}
            key-alias: pas-prod
        spring:
          application:
            name: pas-core
          datasource:
            url: jdbc:oracle:thin:@//ora-pas-prd01.cm.internal:1521/PASPRD
            username: PAS_APP
            password: {V2}
            hikari:
              maximum-pool-size: 40
              connection-timeout: 20000
          jpa:
            open-in-view: false
            properties:
              hibernate.jdbc.batch_size: 50
        pas:
          rating:
            engine-url: https://rating.cm.internal/api/v3
            timeout-ms: 2500
          documents:
            bucket: cm-pas-documents-prd
        """,
    ),
    T(
        "policy-admin/pas-core/src/main/resources/application-uat.yml",
        "h13_ref_java",
        False,
        r"""
        # UAT profile: every secret comes from Vault via spring-cloud-vault (see docs/secrets.md)
        spring:
          config:
            import: vault://
          cloud:
            vault:
              uri: https://vault.cm.internal:8200
              authentication: KUBERNETES
              kv:
                backend: secret
                default-context: pas/uat
          datasource:
            url: jdbc:oracle:thin:@//ora-pas-uat01.cm.internal:1521/PASUAT
            username: PAS_APP
            password: {V}
        server:
          ssl:
            key-store-password: {V2}
        pas:
          rating:
            engine-url: https://rating-uat.cm.internal/api/v3
          mail:
            smtp-password: {V3}
        """,
    ),
    T(
        "policy-admin/pas-core/src/main/resources/application.properties",
        "h13_weak_pw",
        True,
        r"""
        # Local defaults for the policy admin service (overridden per environment)
        spring.profiles.active=dev
        spring.datasource.url=jdbc:oracle:thin:@//ora-pas-dev01.cm.internal:1521/PASDEV
        spring.datasource.username=PAS_APP
        spring.datasource.password={V}
        spring.datasource.driver-class-name=oracle.jdbc.OracleDriver
        spring.liquibase.change-log=classpath:db/changelog/db.changelog-master.xml
        spring.liquibase.user=PAS_OWNER
        spring.liquibase.password={V2}
        pas.quote.ttl-days=30
        pas.renewal.invite-days-before=28
        pas.mta.allow-backdating=false
        logging.level.uk.co.calderic.pas=INFO
        """,
    ),
    T(
        "policy-admin/pas-core/src/main/resources/application-local.properties",
        "h13_placeholder",
        False,
        r"""
        # Copy to application-local.properties.override and fill in your own values.
        # NEVER commit real credentials - use the dev Vault (vault login -method=oidc).
        spring.datasource.url=jdbc:oracle:thin:@//localhost:1521/XEPDB1
        spring.datasource.username=PAS_APP
        spring.datasource.password={V}
        pas.sftp.tpa.password={V2}
        pas.smtp.password={V3}
        """,
    ),
    T(
        "policy-admin/pas-core/src/main/resources/bootstrap-jasypt.properties",
        "h13_jasypt",
        False,
        r"""
        # Encrypted with jasypt-maven-plugin (PBEWITHHMACSHA512ANDAES_256);
        # the master password is injected as JASYPT_ENCRYPTOR_PASSWORD by the pipeline.
        jasypt.encryptor.algorithm=PBEWITHHMACSHA512ANDAES_256
        jasypt.encryptor.iv-generator-classname=org.jasypt.iv.RandomIvGenerator
        spring.datasource.password={V}
        pas.tpa.sftp.password={V2}
        pas.printmail.api-key={V3}
        pas.telematics.client-secret={V4}
        """,
    ),
    T(
        "policy-admin/pas-integration/src/main/resources/partners.properties",
        "h13_telematics_key",
        True,
        r"""
        ## Partner endpoints used by pas-integration
        # Tracklytix telematics (black-box) - policy scoring feed
        partner.telematics.base-url=https://api.tracklytix.io/v2
        partner.telematics.fleet-id=CALDERIC-UK
        partner.telematics.api-key={V}
        partner.telematics.poll-interval=PT15M
        # old key, revoke after 2025-03 cutover (ticket PAS-4471)
        #partner.telematics.api-key={V2}
        partner.telematics.score-threshold=62
        """,
    ),
    T(
        "policy-admin/pas-integration/src/main/java/uk/co/calderic/pas/integration/TpaSftpConfig.java",
        "h13_pw",
        True,
        r"""
        package uk.co.calderic.pas.integration;

        import org.springframework.beans.factory.annotation.Value;
        import org.springframework.context.annotation.Bean;
        import org.springframework.context.annotation.Configuration;
        import org.springframework.integration.sftp.session.DefaultSftpSessionFactory;

        /**
         * SFTP session to the claims TPA (Harrow Claims Solutions) drop box.
         * FNOL files are pushed every 10 minutes by {@link FnolExportJob}.
         */
        @Configuration
        public class TpaSftpConfig {

            private static final String TPA_HOST = "sftp.harrowclaims.co.uk";
            private static final int TPA_PORT = 2222;
            // TODO(PAS-3920): move to Vault before go-live
            private static final String TPA_USER = "calderic_fnol";
            private static final String TPA_PASSWORD = "{V}";

            @Bean
            public DefaultSftpSessionFactory tpaSessionFactory(
                    @Value("${pas.tpa.known-hosts:classpath:tpa_known_hosts}") String knownHosts) {
                DefaultSftpSessionFactory factory = new DefaultSftpSessionFactory(true);
                factory.setHost(TPA_HOST);
                factory.setPort(TPA_PORT);
                factory.setUser(TPA_USER);
                factory.setPassword(TPA_PASSWORD);
                factory.setAllowUnknownKeys(false);
                factory.setKnownHostsResource(new org.springframework.core.io.ClassPathResource("tpa_known_hosts"));
                return factory;
            }
        }
        """,
    ),
    T(
        "policy-admin/pas-core/src/test/java/uk/co/calderic/pas/auth/BrokerLoginControllerTest.java",
        "h13_pw",
        True,
        r"""
        package uk.co.calderic.pas.auth;

        import static org.springframework.test.web.servlet.request.MockMvcRequestBuilders.post;
        import static org.springframework.test.web.servlet.result.MockMvcResultMatchers.status;

        import org.junit.jupiter.api.Test;
        import org.springframework.beans.factory.annotation.Autowired;
        import org.springframework.boot.test.autoconfigure.web.servlet.AutoConfigureMockMvc;
        import org.springframework.boot.test.context.SpringBootTest;
        import org.springframework.test.web.servlet.MockMvc;

        /**
         * Runs against the shared UAT LDAP (ldaps://ldap-uat.cm.internal) - uses the real
         * broker test account, see runbook RB-112.
         */
        @SpringBootTest
        @AutoConfigureMockMvc
        class BrokerLoginControllerTest {

            private static final String UAT_BROKER = "broker.qa01@calderic.co.uk";
            private static final String UAT_BROKER_PASSWORD = "{V}";

            @Autowired
            private MockMvc mvc;

            @Test
            void brokerCanLogIn() throws Exception {
                mvc.perform(post("/api/auth/login")
                                .param("username", UAT_BROKER)
                                .param("password", UAT_BROKER_PASSWORD))
                        .andExpect(status().isOk());
            }
        }
        """,
    ),
    T(
        "policy-admin/.mvn/settings.xml",
        "h13_pw",
        True,
        r"""
        <?xml version="1.0" encoding="UTF-8"?>
        <settings xmlns="http://maven.apache.org/SETTINGS/1.2.0"
                  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
                  xsi:schemaLocation="http://maven.apache.org/SETTINGS/1.2.0 https://maven.apache.org/xsd/settings-1.2.0.xsd">
          <mirrors>
            <mirror>
              <id>cm-nexus</id>
              <mirrorOf>*</mirrorOf>
              <url>https://nexus.cm.internal/repository/maven-public/</url>
            </mirror>
          </mirrors>
          <servers>
            <server>
              <id>cm-nexus</id>
              <username>svc-pas-build</username>
              <password>{V}</password>
            </server>
            <server>
              <id>cm-nexus-releases</id>
              <username>svc-pas-release</username>
              <password>{V2}</password>
            </server>
          </servers>
        </settings>
        """,
    ),
    T(
        "policy-admin/ci/settings-ci.xml",
        "h13_ref_java",
        False,
        r"""
        <?xml version="1.0" encoding="UTF-8"?>
        <!-- Used by Jenkins: credentials are bound with withCredentials(usernamePassword(...)) -->
        <settings>
          <servers>
            <server>
              <id>cm-nexus</id>
              <username>${env.NEXUS_USER}</username>
              <password>{V}</password>
            </server>
            <server>
              <id>sonar</id>
              <configuration>
                <token>{V2}</token>
              </configuration>
            </server>
          </servers>
        </settings>
        """,
    ),
    T(
        "policy-admin/tomcat/conf/tomcat-users.xml",
        "h13_default_tomcat",
        True,
        r"""
        <?xml version="1.0" encoding="UTF-8"?>
        <!-- legacy PAS reporting webapp on pas-rpt-prd02.cm.internal:8080 -->
        <tomcat-users xmlns="http://tomcat.apache.org/xml"
                      xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
                      xsi:schemaLocation="http://tomcat.apache.org/xml tomcat-users.xsd"
                      version="1.0">
          <role rolename="manager-gui"/>
          <role rolename="manager-script"/>
          <user username="tomcat" password="{V}" roles="manager-gui,manager-script"/>
        </tomcat-users>
        """,
    ),
    T(
        "policy-admin/tomcat/conf/tomcat-users.xml.hashed",
        "h13_sha256",
        False,
        r"""
        <?xml version="1.0" encoding="UTF-8"?>
        <!-- Hardened config: CredentialHandler is SHA-256 (digest.sh -a sha-256), see server.xml -->
        <tomcat-users xmlns="http://tomcat.apache.org/xml" version="1.0">
          <role rolename="manager-script"/>
          <user username="deployer" password="{V}" roles="manager-script"/>
          <user username="monitor" password="{V2}" roles="manager-status"/>
        </tomcat-users>
        """,
    ),
    T(
        "policy-admin/pas-core/src/main/resources/db/changelog/liquibase.properties",
        "h13_url_pw",
        True,
        r"""
        # liquibase CLI for DBAs (update / rollbackCount)
        changeLogFile=db/changelog/db.changelog-master.xml
        url=jdbc:oracle:thin:PAS_OWNER/{V}@//ora-pas-stg01.cm.internal:1521/PASSTG
        driver=oracle.jdbc.OracleDriver
        liquibase.hub.mode=off
        logLevel=info
        """,
    ),
    T(
        "policy-admin/pas-core/src/main/resources/keystore/README.md",
        "h13_cert_pem",
        False,
        r"""
        # PAS keystores

        `pas-prod.p12` holds the server certificate for `pas.cm.internal`. The password lives
        in Vault at `secret/pas/prod/keystore`. The public certificate of the TPA's API gateway
        is pinned in `tpa-truststore.jks`; for reference, the PEM we imported:

        ```
        {V}
        ```

        To rotate: `keytool -importcert -alias tpa-gw-2025 -file tpa-gw.pem -keystore tpa-truststore.jks`.
        """,
    ),
    T(
        "policy-admin/pas-core/src/main/resources/jwt/signing-key.pem",
        "h13_ec_pem",
        True,
        r"""
        {V}
        """,
    ),
    T(
        "policy-admin/pas-core/src/main/resources/jwt/signing-key.pub.pem",
        "h13_pubkey_pem",
        False,
        r"""
        {V}
        """,
    ),
    T(
        "policy-admin/pas-core/src/main/java/uk/co/calderic/pas/rating/LegacyRatingClient.java",
        "h13_basic_b64",
        True,
        r"""
        package uk.co.calderic.pas.rating;

        import java.net.URI;
        import java.net.http.HttpClient;
        import java.net.http.HttpRequest;
        import java.net.http.HttpResponse;
        import java.time.Duration;

        /** Calls the old ISO rating engine (pre-2019 motor book). Retire with PAS-5120. */
        public final class LegacyRatingClient {

            private static final String ENDPOINT = "http://rating-legacy.cm.internal:7001/rate";
            private static final String AUTH_HEADER = "Basic {V}";

            private final HttpClient http = HttpClient.newBuilder()
                    .connectTimeout(Duration.ofSeconds(3))
                    .build();

            public String rate(String xmlRequest) throws Exception {
                HttpRequest request = HttpRequest.newBuilder(URI.create(ENDPOINT))
                        .header("Authorization", AUTH_HEADER)
                        .header("Content-Type", "application/xml")
                        .POST(HttpRequest.BodyPublishers.ofString(xmlRequest))
                        .build();
                return http.send(request, HttpResponse.BodyHandlers.ofString()).body();
            }
        }
        """,
    ),
    T(
        "policy-admin/pas-core/src/main/java/uk/co/calderic/pas/model/MotorPolicy.java",
        "h13_vin",
        False,
        r"""
        package uk.co.calderic.pas.model;

        /** Fixture data for the motor policy demo (docs/demo.md). */
        public final class DemoVehicles {
            public static final String VIN_FIESTA = "{V}";
            public static final String VIN_GOLF = "{V2}";
            public static final String VIN_PANDA = "{V3}";

            private DemoVehicles() {
            }
        }
        """,
    ),
]

# ====================================================================== claims platform (.NET)
TEMPLATES += [
    T(
        "claims-platform/src/Calderic.Claims.Api/appsettings.Production.json",
        "h13_ref_dotnet_cfg",
        False,
        r"""
        {
          "Logging": {
            "LogLevel": {
              "Default": "Information",
              "Microsoft.AspNetCore": "Warning"
            }
          },
          "ConnectionStrings": {
            "ClaimsDb": "Server=tcp:sql-cm-claims-prd.database.windows.net,1433;Database=Claims;User ID=claims_app;Password={V};Encrypt=True;"
          },
          "ServiceBus": {
            "Namespace": "sb-cm-claims-prd.servicebus.windows.net",
            "SharedAccessKey": "{V2}"
          },
          "Tpa": {
            "BaseUrl": "https://api.harrowclaims.co.uk/v4",
            "ClientId": "calderic-claims",
            "ClientSecret": "{V3}"
          },
          "AllowedHosts": "*"
        }
        """,
    ),
    T(
        "claims-platform/src/Calderic.Claims.Api/appsettings.Development.json",
        "h13_pw",
        True,
        r"""
        {
          "Logging": {
            "LogLevel": {
              "Default": "Debug"
            }
          },
          "ConnectionStrings": {
            "ClaimsDb": "Server=sql-claims-dev01.cm.internal;Database=Claims_Dev;User Id=claims_app;Password={V};TrustServerCertificate=True",
            "FraudDb": "Server=sql-claims-dev01.cm.internal;Database=FraudScore;User Id=fraud_ro;Password={V2};TrustServerCertificate=True"
          },
          "FeatureManagement": {
            "NewFnolFlow": true
          }
        }
        """,
    ),
    T(
        "claims-platform/src/Calderic.Claims.Api/appsettings.Staging.json",
        "h13_servicebus_conn",
        True,
        r"""
        {
          "ServiceBus": {
            "ConnectionString": "{V}",
            "Queues": {
              "Fnol": "fnol-inbound",
              "Payments": "claim-payments",
              "Documents": "claim-documents"
            }
          },
          "Serilog": {
            "MinimumLevel": "Information"
          }
        }
        """,
    ),
    T(
        "claims-platform/src/Calderic.Claims.Documents/appsettings.json",
        "h13_azure_conn",
        True,
        r"""
        {
          "Storage": {
            "ConnectionString": "{V}",
            "Container": "claim-photos",
            "SasExpiryMinutes": 15
          },
          "Ocr": {
            "Endpoint": "https://cog-cm-claims-ocr.cognitiveservices.azure.com/",
            "UseManagedIdentity": true
          }
        }
        """,
    ),
    T(
        "claims-platform/src/Calderic.Claims.Web/Web.config",
        "h13_machine_key",
        True,
        r"""
        <?xml version="1.0" encoding="utf-8"?>
        <!-- Legacy claims handler UI (WebForms), still served from IIS on web-claims-prd03 -->
        <configuration>
          <appSettings>
            <add key="ClaimsApiBase" value="https://claims-api.cm.internal/" />
            <add key="webpages:Enabled" value="false" />
          </appSettings>
          <system.web>
            <compilation debug="false" targetFramework="4.8" />
            <httpRuntime targetFramework="4.8" />
            <machineKey validationKey="{V}"
                        decryptionKey="{V2}"
                        validation="HMACSHA256" decryption="AES" />
            <authentication mode="Forms">
              <forms loginUrl="~/Account/Login" timeout="30" />
            </authentication>
          </system.web>
        </configuration>
        """,
    ),
    T(
        "claims-platform/src/Calderic.Claims.Web/Web.Release.config",
        "h13_dpapi",
        False,
        r"""
        <?xml version="1.0" encoding="utf-8"?>
        <!-- connectionStrings protected with aspnet_regiis -pef (DataProtectionConfigurationProvider) -->
        <configuration xmlns:xdt="http://schemas.microsoft.com/XML-Document-Transform">
          <connectionStrings configProtectionProvider="DataProtectionConfigurationProvider">
            <EncryptedData>
              <CipherData>
                <CipherValue>{V}</CipherValue>
              </CipherData>
            </EncryptedData>
          </connectionStrings>
          <appSettings configProtectionProvider="DataProtectionConfigurationProvider">
            <EncryptedData>
              <CipherData>
                <CipherValue>{V2}</CipherValue>
              </CipherData>
            </EncryptedData>
          </appSettings>
        </configuration>
        """,
    ),
    T(
        "claims-platform/src/Calderic.Claims.Infrastructure/Tpa/TpaClientOptions.cs",
        "h13_ref_dotnet",
        False,
        r"""
        using Microsoft.Extensions.Configuration;
        using Microsoft.Extensions.Options;

        namespace Calderic.Claims.Infrastructure.Tpa;

        public sealed class TpaClientOptions
        {
            public const string Section = "Tpa";
            public string BaseUrl { get; set; } = "https://api.harrowclaims.co.uk/v4";
            public string ClientId { get; set; } = "calderic-claims";
            public string ClientSecret { get; set; } = string.Empty;
        }

        public sealed class TpaTokenProvider
        {
            private readonly IConfiguration _config;
            private readonly IOptions<TpaClientOptions> _options;

            public TpaTokenProvider(IConfiguration config, IOptions<TpaClientOptions> options)
            {
                _config = config;
                _options = options;
            }

            public string ResolveSecret()
            {
                var fromVault = {V};
                var fallback = {V2};
                return string.IsNullOrEmpty(fromVault) ? fallback : fromVault;
            }
        }
        """,
    ),
    T(
        "claims-platform/src/Calderic.Claims.Infrastructure/Notifications/TwilioSmsSender.cs",
        "h13_twilio_token",
        True,
        r"""
        using Twilio;
        using Twilio.Rest.Api.V2010.Account;
        using Twilio.Types;

        namespace Calderic.Claims.Infrastructure.Notifications;

        /// <summary>Sends FNOL acknowledgement texts. Hot-fixed during the storm surge (INC-2291).</summary>
        public class TwilioSmsSender : ISmsSender
        {
            private const string AccountSid = "AC6d1f0e4b9a7c2d3e8f5a6b7c8d9e0f1a";
            // FIXME: hardcoded until the Key Vault reference is wired into the worker
            private const string AuthToken = "{V}";
            private const string From = "+441615550142";

            public async Task SendAsync(string to, string body, CancellationToken ct)
            {
                TwilioClient.Init(AccountSid, AuthToken);
                await MessageResource.CreateAsync(
                    to: new PhoneNumber(to),
                    from: new PhoneNumber(From),
                    body: body);
            }
        }
        """,
    ),
    T(
        "claims-platform/src/Calderic.Claims.Infrastructure/Notifications/SmsOptions.cs",
        "h13_twilio_sid",
        False,
        r"""
        namespace Calderic.Claims.Infrastructure.Notifications;

        /// <summary>Non-secret Twilio identifiers per environment (auth token is in Key Vault).</summary>
        public static class SmsIdentifiers
        {
            public const string ProdAccountSid = "{V}";
            public const string ProdMessagingServiceSid = "{V2}";
            public const string UatAccountSid = "{V3}";
        }
        """,
    ),
    T(
        "claims-platform/tests/Calderic.Claims.Integration.Tests/SqlFixture.cs",
        "h13_weak_pw",
        True,
        r"""
        using Microsoft.Data.SqlClient;

        namespace Calderic.Claims.Integration.Tests;

        /// <summary>Shared fixture against the QA SQL Server (sql-claims-qa01). Not a container!</summary>
        public sealed class SqlFixture : IDisposable
        {
            public SqlConnection Connection { get; }

            public SqlFixture()
            {
                var builder = new SqlConnectionStringBuilder
                {
                    DataSource = "sql-claims-qa01.cm.internal",
                    InitialCatalog = "Claims_QA",
                    UserID = "sa",
                    Password = "{V}",
                    TrustServerCertificate = true,
                };
                Connection = new SqlConnection(builder.ConnectionString);
                Connection.Open();
            }

            public void Dispose() => Connection.Dispose();
        }
        """,
    ),
    T(
        "claims-platform/src/Calderic.Claims.Identity/Data/SeedUsers.sql",
        "h13_aspnet_hash",
        False,
        r"""
        -- Seed handler accounts for the claims identity store (ASP.NET Core Identity v3 hashes)
        -- Initial passwords are sent by the service desk; users must change them on first login.
        INSERT INTO dbo.AspNetUsers (Id, UserName, NormalizedUserName, Email, PasswordHash, SecurityStamp, LockoutEnabled)
        VALUES
          (NEWID(), 'm.kowalska', 'M.KOWALSKA', 'm.kowalska@calderic.co.uk', '{V}', NEWID(), 1),
          (NEWID(), 'l.ferrari', 'L.FERRARI', 'l.ferrari@calderic.co.uk', '{V2}', NEWID(), 1),
          (NEWID(), 'j.garcia', 'J.GARCIA', 'j.garcia@calderic.co.uk', '{V3}', NEWID(), 1);
        """,
    ),
    T(
        "claims-platform/deploy/Set-ClaimsAppSettings.ps1",
        "h13_azure_client_secret",
        True,
        r"""
        <#
        .SYNOPSIS
          Pushes app settings to the claims App Service slots.
        .NOTES
          Run from the ops jump box. Requires Az.Websites.
        #>
        param(
            [ValidateSet('uat', 'prd')] [string] $Environment = 'uat'
        )

        $tenantId = '3b1e6a2c-9f4d-4c7e-8a51-2d6b0f9e7c13'
        $appId    = '9c2f5e18-6a3b-4d0e-b7c4-1e8f2a6d5b90'
        $secret   = ConvertTo-SecureString '{V}' -AsPlainText -Force
        $cred     = New-Object System.Management.Automation.PSCredential($appId, $secret)
        Connect-AzAccount -ServicePrincipal -Tenant $tenantId -Credential $cred | Out-Null

        $rg   = "rg-cm-claims-$Environment"
        $site = "app-cm-claims-api-$Environment"
        Set-AzWebApp -ResourceGroupName $rg -Name $site -AppSettings @{
            'ASPNETCORE_ENVIRONMENT' = if ($Environment -eq 'prd') { 'Production' } else { 'Staging' }
            'Tpa__BaseUrl'           = 'https://api.harrowclaims.co.uk/v4'
        }
        """,
    ),
    T(
        "claims-platform/deploy/Connect-ClaimsSubscription.ps1",
        "h13_uuid",
        False,
        r"""
        # Interactive login for operators; ids are not secret (see wiki: Azure landing zones).
        $TenantId       = '{V}'
        $SubscriptionId = '{V2}'
        $ClientId       = '{V3}'
        Connect-AzAccount -Tenant $TenantId -Subscription $SubscriptionId -UseDeviceAuthentication
        Write-Host "Connected as $((Get-AzContext).Account.Id) (app $ClientId for automation only)"
        """,
    ),
    T(
        "claims-platform/deploy/Invoke-ClaimsDbMigration.ps1",
        "h13_ref_ps",
        False,
        r"""
        [CmdletBinding()]
        param(
            [string] $Server = 'sql-cm-claims-prd.database.windows.net',
            [string] $Database = 'Claims'
        )
        $ErrorActionPreference = 'Stop'

        $password = {V}
        $connection = "Server=tcp:$Server,1433;Database=$Database;User ID=claims_migrator;Password=$password;Encrypt=True"

        dotnet ef database update `
            --project src/Calderic.Claims.Infrastructure `
            --connection $connection
        Write-Host "Migrated $Database on $Server"
        """,
    ),
    T(
        "claims-platform/docker-compose.override.yml",
        "h13_pw",
        True,
        r"""
        # Local stack for claims devs. sql-claims is exposed on 14330 so it doesn't clash with LocalDB.
        services:
          sql-claims:
            image: mcr.microsoft.com/mssql/server:2022-latest
            environment:
              ACCEPT_EULA: "Y"
              MSSQL_SA_PASSWORD: "{V}"
            ports:
              - "14330:1433"
          claims-api:
            build: ./src/Calderic.Claims.Api
            environment:
              ConnectionStrings__ClaimsDb: "Server=sql-claims;Database=Claims;User Id=sa;Password={V};TrustServerCertificate=True"
              ASPNETCORE_ENVIRONMENT: Development
            depends_on:
              - sql-claims
        """,
    ),
    T(
        "claims-platform/docker-compose.ci.yml",
        "h13_ref_sh",
        False,
        r"""
        services:
          sql-claims:
            image: mcr.microsoft.com/mssql/server:2022-latest
            environment:
              ACCEPT_EULA: "Y"
              MSSQL_SA_PASSWORD: "{V}"
          rabbit:
            image: rabbitmq:3.13-management
            environment:
              RABBITMQ_DEFAULT_USER: claims
              RABBITMQ_DEFAULT_PASS: "{V2}"
        """,
    ),
    T(
        "claims-platform/src/Calderic.Claims.Api/Properties/launchSettings.json",
        "h13_jwt",
        True,
        r"""
        {
          "profiles": {
            "Calderic.Claims.Api": {
              "commandName": "Project",
              "launchBrowser": true,
              "launchUrl": "swagger",
              "applicationUrl": "https://localhost:7125;http://localhost:5125",
              "environmentVariables": {
                "ASPNETCORE_ENVIRONMENT": "Development",
                "CLAIMS__UATBEARER": "{V}"
              }
            }
          }
        }
        """,
    ),
    T(
        "claims-platform/src/Calderic.Claims.Api/secrets.example.json",
        "h13_placeholder",
        False,
        r"""
        {
          "_comment": "Template for dotnet user-secrets. Run: type secrets.example.json | dotnet user-secrets set",
          "ConnectionStrings:ClaimsDb": "Server=localhost,14330;Database=Claims;User Id=sa;Password={V};TrustServerCertificate=True",
          "Tpa:ClientSecret": "{V2}",
          "ServiceBus:SharedAccessKey": "{V3}"
        }
        """,
    ),
    T(
        "claims-platform/src/Calderic.Claims.Worker/Program.cs",
        "h13_sendgrid",
        True,
        r"""
        using Calderic.Claims.Worker;
        using SendGrid.Extensions.DependencyInjection;

        var builder = Host.CreateApplicationBuilder(args);

        builder.Services.AddSendGrid(options =>
        {
            // TODO remove: temp key for the UAT email-template test, ask Lucia before deleting
            options.ApiKey = builder.Configuration["SendGrid:ApiKey"] ?? "{V}";
        });
        builder.Services.AddHostedService<ClaimLetterWorker>();

        var host = builder.Build();
        host.Run();
        """,
    ),
]

# ====================================================================== broker portal (PHP)
TEMPLATES += [
    T(
        "broker-portal/.env.production",
        "h13_pw",
        True,
        r"""
        APP_NAME="Calderic Broker Portal"
        APP_ENV=production
        APP_DEBUG=false
        APP_URL=https://brokers.calderic.co.uk

        LOG_CHANNEL=stack
        LOG_LEVEL=warning

        DB_CONNECTION=mysql
        DB_HOST=mysql-broker-prd.cm.internal
        DB_PORT=3306
        DB_DATABASE=broker_portal
        DB_USERNAME=broker_app
        DB_PASSWORD={V}

        REDIS_HOST=redis-broker-prd.cm.internal
        REDIS_PASSWORD={V2}
        REDIS_PORT=6379

        MAIL_MAILER=smtp
        MAIL_HOST=smtp.office365.com
        MAIL_PORT=587
        MAIL_USERNAME=brokers-noreply@calderic.co.uk
        MAIL_PASSWORD={V3}
        MAIL_ENCRYPTION=tls
        """,
    ),
    T(
        "broker-portal/.env.staging",
        "h13_laravel_key",
        True,
        r"""
        APP_NAME="Calderic Broker Portal (staging)"
        APP_ENV=staging
        APP_KEY={V}
        APP_DEBUG=false
        APP_URL=https://brokers-stg.calderic.co.uk
        # previous key kept so old sessions can still be decrypted (Laravel 11 APP_PREVIOUS_KEYS)
        APP_PREVIOUS_KEYS={V2}
        SESSION_DRIVER=redis
        QUEUE_CONNECTION=redis
        """,
    ),
    T(
        "broker-portal/.env.example",
        "h13_placeholder",
        False,
        r"""
        APP_NAME="Calderic Broker Portal"
        APP_ENV=local
        APP_KEY=
        APP_DEBUG=true
        APP_URL=http://localhost:8080

        DB_CONNECTION=mysql
        DB_HOST=127.0.0.1
        DB_PORT=3306
        DB_DATABASE=broker_portal
        DB_USERNAME=broker_app
        DB_PASSWORD={V}

        MAIL_PASSWORD={V2}
        QUOTES_API_SECRET={V3}
        """,
    ),
    T(
        "broker-portal/.env.testing",
        "h13_fake",
        False,
        r"""
        APP_ENV=testing
        APP_KEY=base64:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
        DB_CONNECTION=sqlite
        DB_DATABASE=:memory:
        # fake values so the service container can boot in PHPUnit
        QUOTES_API_SECRET={V}
        TPA_SFTP_PASS={V2}
        STRIPE_SECRET={V3}
        """,
    ),
    T(
        "broker-portal/config/services.php",
        "h13_ref_php",
        False,
        r"""
        <?php

        return [

            'quotes' => [
                'base_url' => env('QUOTES_API_URL', 'https://rating.cm.internal/api/v3'),
                'secret' => {V},
                'timeout' => 5,
            ],

            'tpa' => [
                'sftp_host' => 'sftp.harrowclaims.co.uk',
                'sftp_user' => 'calderic_broker',
                'sftp_pass' => {V2},
            ],

            'mailgun' => [
                'domain' => env('MAILGUN_DOMAIN'),
                'secret' => {V3},
                'endpoint' => env('MAILGUN_ENDPOINT', 'api.eu.mailgun.net'),
            ],
        ];
        """,
    ),
    T(
        "broker-portal/config/database.php",
        "h13_url_pw",
        True,
        r"""
        <?php

        use Illuminate\Support\Str;

        return [
            'default' => env('DB_CONNECTION', 'mysql'),

            'connections' => [
                'mysql' => [
                    'driver' => 'mysql',
                    'url' => env('DATABASE_URL'),
                    'host' => env('DB_HOST', '127.0.0.1'),
                    'database' => env('DB_DATABASE', 'broker_portal'),
                    'username' => env('DB_USERNAME', 'broker_app'),
                    'password' => env('DB_PASSWORD', ''),
                    'charset' => 'utf8mb4',
                ],

                // legacy commission ledger (read-only), still on the old MySQL 5.7 box
                'commissions' => [
                    'driver' => 'mysql',
                    'url' => env('COMMISSIONS_URL', 'mysql://commission_ro:{V}@mysql-legacy01.cm.internal:3306/commissions'),
                    'charset' => 'utf8',
                ],
            ],
        ];
        """,
    ),
    T(
        "broker-portal/app/Services/Sftp/TpaUploader.php",
        "h13_pw",
        True,
        r"""
        <?php

        namespace App\Services\Sftp;

        use phpseclib3\Net\SFTP;
        use RuntimeException;

        /**
         * Uploads broker-submitted claim documents to the TPA drop box.
         * Nightly run from app/Console/Kernel.php.
         */
        final class TpaUploader
        {
            private const HOST = 'sftp.harrowclaims.co.uk';
            private const PORT = 2222;

            public function upload(string $localPath, string $remoteName): void
            {
                $sftp = new SFTP(self::HOST, self::PORT);
                // password auth until Harrow enable our key (HCS-ticket 88231)
                if (!$sftp->login('calderic_broker', '{V}')) {
                    throw new RuntimeException('TPA SFTP login failed');
                }
                $sftp->put('/inbound/brokers/' . $remoteName, $localPath, SFTP::SOURCE_LOCAL_FILE);
            }
        }
        """,
    ),
    T(
        "broker-portal/lang/pl/auth.php",
        "h13_i18n_pl",
        False,
        r"""
        <?php

        return [
            'failed' => '{V}',
            'password' => '{V2}',
            'throttle' => 'Zbyt wiele prób logowania. Spróbuj ponownie za :seconds sekund.',
            'reset_hint' => '{V3}',
        ];
        """,
    ),
    T(
        "broker-portal/database/seeders/BrokerUserSeeder.php",
        "h13_bcrypt",
        False,
        r"""
        <?php

        namespace Database\Seeders;

        use App\Models\BrokerUser;
        use Illuminate\Database\Seeder;

        class BrokerUserSeeder extends Seeder
        {
            public function run(): void
            {
                // hashes exported from the old portal; users reset on first login
                BrokerUser::insert([
                    ['email' => 'ops@northgate-brokers.co.uk', 'password' => '{V}', 'agency_code' => 'NGB01'],
                    ['email' => 'quotes@alba-insure.co.uk', 'password' => '{V2}', 'agency_code' => 'ALB07'],
                    ['email' => 'admin@polbrok.pl', 'password' => '{V3}', 'agency_code' => 'PLB02'],
                ]);
            }
        }
        """,
    ),
    T(
        "broker-portal/database/seeders/LocalAdminSeeder.php",
        "h13_weak_pw",
        True,
        r"""
        <?php

        namespace Database\Seeders;

        use App\Models\BrokerUser;
        use Illuminate\Database\Seeder;
        use Illuminate\Support\Facades\Hash;

        // Also run on the shared UAT box by deploy.sh (php artisan db:seed --class=LocalAdminSeeder)
        class LocalAdminSeeder extends Seeder
        {
            public function run(): void
            {
                BrokerUser::updateOrCreate(
                    ['email' => 'portal-admin@calderic.co.uk'],
                    ['name' => 'Portal Admin', 'password' => Hash::make('{V}'), 'is_admin' => true]
                );
            }
        }
        """,
    ),
    T(
        "broker-portal/auth.json",
        "h13_github",
        True,
        r"""
        {
            "github-oauth": {
                "github.com": "{V}"
            },
            "gitlab-domains": ["gitlab.cm.internal"]
        }
        """,
    ),
    T(
        "broker-portal/tests/Feature/QuoteApiTest.php",
        "h13_doc_url",
        False,
        r"""
        <?php

        namespace Tests\Feature;

        use Tests\TestCase;

        class QuoteApiTest extends TestCase
        {
            protected function setUp(): void
            {
                parent::setUp();
                config(['database.connections.commissions.url' => '{V}']);
                config(['services.quotes.base_url' => 'https://rating.example.com/api/v3']);
            }

            public function test_quote_endpoint_requires_auth(): void
            {
                $this->postJson('/api/quotes', ['product' => 'motor'])->assertUnauthorized();
            }
        }
        """,
    ),
    T(
        "broker-portal/symfony-legacy/app/config/parameters.yml",
        "h13_hex_secret",
        True,
        r"""
        # This file is auto-generated during the composer install (legacy Symfony 3 commission app)
        parameters:
            database_host: mysql-legacy01.cm.internal
            database_port: 3306
            database_name: commissions
            database_user: commission_app
            database_password: ~
            mailer_transport: smtp
            mailer_host: smtp.cm.internal
            secret: {V}
            quotes_hmac_key: {V2}
        """,
    ),
    T(
        "broker-portal/symfony-legacy/app/config/parameters.yml.dist",
        "h13_ref_php",
        False,
        r"""
        parameters:
            database_host: 127.0.0.1
            database_name: commissions
            database_user: commission_app
            database_password: '{V}'
            secret: '{V2}'
        """,
    ),
    T(
        "broker-portal/docker/php/Dockerfile.secure",
        "h13_ref_sh",
        False,
        r"""
        # syntax=docker/dockerfile:1.7
        FROM php:8.3-fpm-bookworm
        COPY --from=composer:2 /usr/bin/composer /usr/bin/composer
        WORKDIR /var/www/html
        COPY composer.json composer.lock ./
        # token passed as a BuildKit secret: docker build --secret id=composer_auth,src=auth.json
        RUN --mount=type=secret,id=composer_auth,target=/root/.composer/auth.json \
            composer install --no-dev --prefer-dist
        ENV DB_PASSWORD_FILE=/run/secrets/db_password
        # runtime entrypoint exports DB_PASSWORD={V}
        COPY . .
        """,
    ),
]

# ====================================================================== actuarial & pricing (Python, R, SAS, SQL)
TEMPLATES += [
    T(
        "pricing-models/motor_glm/config/connections.yaml",
        "h13_pw",
        True,
        r"""
        # Connection profiles for the motor GLM refresh (read by pricing_utils.connect)
        snowflake:
          account: calderic-eu_west_2
          warehouse: PRICING_WH
          database: PRICING
          schema: MOTOR
          user: SVC_PRICING
          password: "{V}"
          role: PRICING_RW
        claims_dw:
          driver: ODBC Driver 18 for SQL Server
          server: sql-claims-dw.cm.internal
          database: ClaimsDW
          uid: pricing_ro
          pwd: "{V2}"
        """,
    ),
    T(
        "pricing-models/motor_glm/config/connections.template.yaml",
        "h13_ref_py",
        False,
        r"""
        # Passwords are not stored here; pricing_utils resolves these expressions at runtime.
        snowflake:
          account: calderic-eu_west_2
          user: SVC_PRICING
          password_expr: '{V}'
        claims_dw:
          server: sql-claims-dw.cm.internal
          uid: pricing_ro
          pwd_expr: '{V2}'
        """,
    ),
    T(
        "pricing-models/pricing_utils/connect.py",
        "h13_pw",
        True,
        r"""
        '''Thin helpers around Snowflake and the claims DW used by every pricing notebook.'''

        from __future__ import annotations

        import os

        import pyodbc
        import snowflake.connector


        def snowflake_conn(role: str = "PRICING_RW"):
            return snowflake.connector.connect(
                account="calderic-eu_west_2",
                user=os.getenv("SNOWFLAKE_USER", "SVC_PRICING"),
                password=os.getenv("SNOWFLAKE_PASSWORD", "{V}"),
                warehouse="PRICING_WH",
                role=role,
            )


        def claims_dw_conn():
            conn_str = (
                "DRIVER={ODBC Driver 18 for SQL Server};"
                "SERVER=sql-claims-dw.cm.internal;DATABASE=ClaimsDW;"
                "UID=pricing_ro;PWD=" + os.environ.get("CLAIMS_DW_PWD", "{V2}") + ";"
                "TrustServerCertificate=yes"
            )
            return pyodbc.connect(conn_str)
        """,
    ),
    T(
        "pricing-models/pricing_utils/connect_vault.py",
        "h13_ref_py",
        False,
        r"""
        '''Variant used on Databricks jobs: secrets come from the "pricing" secret scope.'''

        import snowflake.connector


        def snowflake_conn(dbutils, settings):
            password = {V}
            return snowflake.connector.connect(
                account="calderic-eu_west_2",
                user="SVC_PRICING",
                password=password,
                warehouse="PRICING_WH",
            )


        def telematics_headers(settings):
            return {"X-Api-Key": {V2}, "Accept": "application/json"}
        """,
    ),
    T(
        "pricing-models/home_cat/notebooks/01_flood_exposure.ipynb",
        "h13_databricks",
        True,
        r"""
        {
         "cells": [
          {
           "cell_type": "markdown",
           "metadata": {},
           "source": [
            "# Home - flood exposure by postcode sector\n",
            "Pulls the JBA flood scores from the Databricks lakehouse and joins them to in-force home policies."
           ]
          },
          {
           "cell_type": "code",
           "execution_count": 3,
           "metadata": {},
           "outputs": [],
           "source": [
            "from databricks import sql\n",
            "conn = sql.connect(\n",
            "    server_hostname=\"adb-4417309255113271.11.azuredatabricks.net\",\n",
            "    http_path=\"/sql/1.0/warehouses/7f3c2a91b0d4e5f6\",\n",
            "    access_token=\"{V}\",\n",
            ")\n",
            "cur = conn.cursor()"
           ]
          }
         ],
         "metadata": {
          "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}
         },
         "nbformat": 4,
         "nbformat_minor": 5
        }
        """,
    ),
    T(
        "pricing-models/pet/notebooks/breed_relativities.ipynb",
        "h13_redacted",
        False,
        r"""
        {
         "cells": [
          {
           "cell_type": "code",
           "execution_count": 1,
           "metadata": {},
           "outputs": [],
           "source": [
            "import pandas as pd\n",
            "import snowflake.connector\n",
            "# credentials removed before commit (pre-commit nbstripout + manual check)\n",
            "conn = snowflake.connector.connect(account='calderic-eu_west_2', user='SVC_PRICING', password='{V}')"
           ]
          },
          {
           "cell_type": "code",
           "execution_count": 2,
           "metadata": {},
           "outputs": [],
           "source": [
            "breeds = pd.read_sql('SELECT breed, exposure, claim_cost FROM PET.BREED_SUMMARY', conn)\n",
            "breeds['relativity'] = breeds.claim_cost / breeds.claim_cost.mean()"
           ]
          }
         ],
         "metadata": {},
         "nbformat": 4,
         "nbformat_minor": 5
        }
        """,
    ),
    T(
        "pricing-models/.Renviron",
        "h13_pw",
        True,
        r"""
        # Personal R environment for the pricing team's RStudio Workbench (do not share)
        PRICING_DB_DSN=ClaimsDW
        PRICING_DB_UID=pricing_ro
        PRICING_DB_PWD={V}
        SNOWFLAKE_USER=SVC_PRICING
        SNOWFLAKE_PASSWORD={V2}
        R_LIBS_USER=~/R/library
        """,
    ),
    T(
        "pricing-models/.Renviron.example",
        "h13_placeholder",
        False,
        r"""
        # Copy to ~/.Renviron and fill in. Ask #pricing-platform for access.
        PRICING_DB_DSN=ClaimsDW
        PRICING_DB_UID=pricing_ro
        PRICING_DB_PWD={V}
        CONNECT_SERVER=https://connect.cm.internal
        CONNECT_API_KEY={V2}
        """,
    ),
    T(
        "pricing-models/motor_glm/R/01_extract.R",
        "h13_pw",
        True,
        r"""
        # Motor GLM refresh - step 1: extract earned exposure and claims
        # Author: actuarial pricing. Run monthly after the DW close.
        library(DBI)
        library(odbc)
        library(dplyr)

        con <- dbConnect(
          odbc::odbc(),
          Driver   = "ODBC Driver 18 for SQL Server",
          Server   = "sql-claims-dw.cm.internal",
          Database = "ClaimsDW",
          UID      = "pricing_ro",
          PWD      = "{V}",
          TrustServerCertificate = "yes"
        )

        exposure <- tbl(con, in_schema("motor", "earned_exposure")) |>
          filter(uw_year >= 2019) |>
          collect()

        claims <- tbl(con, in_schema("motor", "claims_incurred")) |>
          filter(loss_year >= 2019) |>
          collect()

        saveRDS(exposure, "data/exposure.rds")
        saveRDS(claims, "data/claims.rds")
        dbDisconnect(con)
        """,
    ),
    T(
        "pricing-models/travel/R/extract.R",
        "h13_ref_r",
        False,
        r"""
        library(DBI)

        con <- dbConnect(
          odbc::odbc(),
          dsn = "ClaimsDW",
          uid = Sys.getenv("PRICING_DB_UID"),
          pwd = {V}
        )
        trips <- dbGetQuery(con, "SELECT * FROM travel.trip_exposure WHERE policy_year >= 2022")
        dbDisconnect(con)
        """,
    ),
    T(
        "pricing-models/deploy/publish_connect.R",
        "h13_posit_key",
        True,
        r"""
        # Publishes the pricing dashboards to Posit Connect
        library(rsconnect)

        rsconnect::addServer("https://connect.cm.internal", name = "cm-connect")
        rsconnect::connectApiUser(
          account = "pricing-bot",
          server  = "cm-connect",
          apiKey  = "{V}"
        )

        rsconnect::deployApp(
          appDir   = "dashboards/motor_monitoring",
          appName  = "motor-monitoring",
          server   = "cm-connect",
          forceUpdate = TRUE
        )
        """,
    ),
    T(
        "pricing-models/pet/R/tests/testthat/test-relativities.R",
        "h13_fake",
        False,
        r"""
        test_that("relativities are computed without hitting the DW", {
          withr::local_envvar(PRICING_DB_PWD = "{V}", CONNECT_API_KEY = "{V2}")
          mock_con <- mockery::mock(data.frame(breed = c("Labrador", "Pug"), claim_cost = c(100, 300)))
          res <- compute_relativities(mock_con)
          expect_equal(nrow(res), 2)
        })
        """,
    ),
    T(
        "pricing-models/sas/autoexec_pricing.sas",
        "h13_sas001",
        True,
        r"""
        /* autoexec for the pricing SAS Grid workspace (sas-grid03) */
        options fullstimer compress=yes;

        /* Oracle PAS replica - encoded with PROC PWENCODE */
        libname pasrep oracle user=PRICING_RO password="{V}"
                path="//ora-pas-rep01.cm.internal:1521/PASREP" schema=PAS;

        /* claims DW over ODBC */
        libname clmdw odbc datasrc=ClaimsDW user=pricing_ro password="{V2}" schema=motor;

        %let run_date = %sysfunc(today(), yymmddn8.);
        """,
    ),
    T(
        "pricing-models/sas/macros/connect_snowflake.sas",
        "h13_pw",
        True,
        r"""
        %macro connect_snowflake(schema=MOTOR);
          /* TODO: swap to authdomain=SnowflakeAuth once the metadata server is rebuilt */
          libname snow snow server="calderic-eu_west_2.snowflakecomputing.com"
                  user=SVC_PRICING password="{V}"
                  warehouse=PRICING_WH database=PRICING schema=&schema;
        %mend connect_snowflake;

        %connect_snowflake(schema=HOME);
        """,
    ),
    T(
        "pricing-models/sas/macros/connect_snowflake_authdomain.sas",
        "h13_ref_sas",
        False,
        r"""
        %macro connect_dw;
          %let dwpass = %sysget(SAS_DW_PASSWORD);
          libname clmdw odbc datasrc=ClaimsDW user=pricing_ro password={V} schema=motor;
          libname pasrep oracle user=PRICING_RO password={V2} path="PASREP";
        %mend connect_dw;
        """,
    ),
    T(
        "pricing-models/sas/reserving/ibnr_chainladder.sas",
        "h13_claim_no",
        False,
        r"""
        /* IBNR chain ladder - motor own damage. Large losses capped at 250k. */
        data work.large_losses;
          input claim_id :$16. incurred;
          datalines;
        {V} 412500
        {V2} 318000
        {V3} 275250
        ;
        run;

        proc sql;
          create table work.capped as
          select a.*, min(a.incurred, 250000) as incurred_capped
          from clmdw.claims_incurred a;
        quit;
        """,
    ),
    T(
        "pricing-models/sql/grants/pricing_roles.sql",
        "h13_pw",
        True,
        r"""
        -- Pricing read-only logins on the claims DW (applied by DBA on 2024-09-12, CHG-10442)
        USE [master];
        GO
        CREATE LOGIN [pricing_ro] WITH PASSWORD = N'{V}', CHECK_POLICY = ON, DEFAULT_DATABASE = [ClaimsDW];
        GO
        CREATE LOGIN [sas_etl] WITH PASSWORD = N'{V2}', CHECK_POLICY = OFF;
        GO
        USE [ClaimsDW];
        GO
        CREATE USER [pricing_ro] FOR LOGIN [pricing_ro];
        ALTER ROLE [db_datareader] ADD MEMBER [pricing_ro];
        GO
        """,
    ),
    T(
        "pricing-models/sql/grants/snowflake_service_users.sql",
        "h13_weak_pw",
        True,
        r"""
        -- Snowflake service users for pricing (run as SECURITYADMIN)
        USE ROLE SECURITYADMIN;
        CREATE USER IF NOT EXISTS SVC_PRICING_TEST
          PASSWORD = '{V}'
          DEFAULT_ROLE = PRICING_RO
          DEFAULT_WAREHOUSE = PRICING_WH
          MUST_CHANGE_PASSWORD = FALSE;
        GRANT ROLE PRICING_RO TO USER SVC_PRICING_TEST;
        """,
    ),
    T(
        "pricing-models/sql/grants/snowflake_keypair_users.sql",
        "h13_pubkey_pem",
        False,
        r"""
        -- Key-pair auth for the pricing service user (public key only; private key is in Key Vault)
        USE ROLE SECURITYADMIN;
        ALTER USER SVC_PRICING SET RSA_PUBLIC_KEY = '
        {V}
        ';
        DESC USER SVC_PRICING;
        """,
    ),
    T(
        "pricing-models/keys/svc_pricing_rsa_key.p8",
        "h13_pkcs8_pem",
        True,
        r"""
        {V}
        """,
    ),
    T(
        "pricing-models/sql/oracle/pas_replica_users.sql",
        "h13_racf_pw",
        True,
        r"""
        -- PAS replica accounts (Oracle 19c). Passwords agreed with the DBA team by phone.
        CREATE USER pricing_ro IDENTIFIED BY "{V}"
          DEFAULT TABLESPACE users
          QUOTA 0 ON users
          PROFILE app_profile;
        GRANT CREATE SESSION TO pricing_ro;
        GRANT SELECT ANY TABLE TO pricing_ro;

        ALTER USER sas_etl IDENTIFIED BY "{V2}" ACCOUNT UNLOCK;
        """,
    ),
    T(
        "pricing-models/telematics/devices.csv",
        "h13_imei",
        False,
        r"""
        device_imei,policy_number,installed_on,firmware
        {V},CM-MOT-2024-0031877,2024-03-14,tlx-4.2.1
        {V2},CM-MOT-2024-0041120,2024-05-02,tlx-4.2.1
        {V3},CM-MOT-2025-0002913,2025-01-20,tlx-4.3.0
        {V4},CM-MOT-2025-0007741,2025-02-11,tlx-4.3.0
        """,
    ),
    T(
        "pricing-models/airflow/dags/pricing_refresh.py",
        "h13_url_pw",
        True,
        r"""
        from datetime import datetime

        from airflow import DAG
        from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator

        # Connection created by hand in the UI was lost on upgrade; defined here for now.
        # AIRFLOW_CONN_CLAIMS_DW is picked up by the scheduler from the env of this module's worker.
        import os

        os.environ.setdefault(
            "AIRFLOW_CONN_CLAIMS_DW",
            "mssql://pricing_ro:{V}@sql-claims-dw.cm.internal:1433/ClaimsDW",
        )

        with DAG("pricing_refresh", start_date=datetime(2024, 1, 1), schedule="0 4 * * *", catchup=False):
            SQLExecuteQueryOperator(
                task_id="refresh_exposure",
                conn_id="claims_dw",
                sql="EXEC motor.refresh_earned_exposure",
            )
        """,
    ),
]

# ====================================================================== call centre CRM (Salesforce)
TEMPLATES += [
    T(
        "crm-salesforce/force-app/main/default/classes/TelematicsScoreService.cls",
        "h13_telematics_key",
        True,
        r"""
        /**
         * Pulls the latest driving score for a motor policy so agents can quote renewal discounts.
         * Called from the Renewal Console LWC. Named Credential migration tracked in CRM-882.
         */
        public with sharing class TelematicsScoreService {
            private static final String BASE_URL = 'https://api.tracklytix.io/v2';
            private static final String API_KEY = '{V}';

            @AuraEnabled(cacheable=true)
            public static Integer latestScore(String imei) {
                HttpRequest req = new HttpRequest();
                req.setEndpoint(BASE_URL + '/devices/' + EncodingUtil.urlEncode(imei, 'UTF-8') + '/score');
                req.setMethod('GET');
                req.setHeader('X-Api-Key', API_KEY);
                req.setTimeout(10000);
                HttpResponse res = new Http().send(req);
                if (res.getStatusCode() != 200) {
                    throw new AuraHandledException('Telematics service unavailable');
                }
                Map<String, Object> body = (Map<String, Object>) JSON.deserializeUntyped(res.getBody());
                return (Integer) body.get('score');
            }
        }
        """,
    ),
    T(
        "crm-salesforce/force-app/main/default/classes/TpaClaimSync.cls",
        "h13_ref_apex",
        False,
        r"""
        public with sharing class TpaClaimSync implements Queueable, Database.AllowsCallouts {
            private final Id claimId;

            public TpaClaimSync(Id claimId) {
                this.claimId = claimId;
            }

            public void execute(QueueableContext ctx) {
                Claim__c c = [SELECT Name, Policy_Number__c, Status__c FROM Claim__c WHERE Id = :claimId];
                HttpRequest req = new HttpRequest();
                req.setEndpoint('{V}' + '/claims/' + c.Name);
                req.setMethod('PUT');
                req.setHeader('Authorization', 'Bearer ' + '{V2}');
                req.setBody(JSON.serialize(c));
                new Http().send(req);
            }
        }
        """,
    ),
    T(
        "crm-salesforce/force-app/main/default/namedCredentials/TPA_Claims_API.namedCredential-meta.xml",
        "h13_ref_apex",
        False,
        r"""
        <?xml version="1.0" encoding="UTF-8"?>
        <NamedCredential xmlns="http://soap.sforce.com/2006/04/metadata">
            <label>TPA Claims API</label>
            <endpoint>https://api.harrowclaims.co.uk/v4</endpoint>
            <principalType>NamedUser</principalType>
            <protocol>Password</protocol>
            <username>calderic-crm</username>
            <generateAuthorizationHeader>true</generateAuthorizationHeader>
            <allowMergeFieldsInHeader>true</allowMergeFieldsInHeader>
            <!-- header sent: X-Tpa-Key: {V} -->
            <allowMergeFieldsInBody>false</allowMergeFieldsInBody>
        </NamedCredential>
        """,
    ),
    T(
        "crm-salesforce/force-app/main/default/namedCredentials/PrintMail.namedCredential-meta.xml",
        "h13_pw",
        True,
        r"""
        <?xml version="1.0" encoding="UTF-8"?>
        <!-- retrieved with sfdx force:source:retrieve from the old org; password came along -->
        <NamedCredential xmlns="http://soap.sforce.com/2006/04/metadata">
            <label>Docuvia Print and Mail</label>
            <endpoint>https://api.docuvia.co.uk</endpoint>
            <principalType>NamedUser</principalType>
            <protocol>Password</protocol>
            <username>calderic_crm</username>
            <password>{V}</password>
            <generateAuthorizationHeader>true</generateAuthorizationHeader>
        </NamedCredential>
        """,
    ),
    T(
        "crm-salesforce/config/connected-app-integration.md",
        "h13_sf_consumer_secret",
        True,
        r"""
        # Connected app: "Calderic Claims Integration"

        Used by the .NET claims platform to push claim status into the CRM (JWT bearer flow is the
        target; we are still on username-password flow in UAT).

        | Setting          | UAT value |
        |------------------|-----------|
        | Consumer key     | 3MVG9rZjd7MXFdLh2kE4wP1dNn8Q0_a5tbYuHqC1vZ2lS.xKzB7JrW6oUe9pF3gT |
        | Consumer secret  | {V} |
        | Callback URL     | https://claims-api-uat.cm.internal/sf/callback |
        | Scopes           | api, refresh_token |

        Integration user: `claims.integration@calderic.co.uk.uat`.
        """,
    ),
    T(
        "crm-salesforce/scripts/apex/reset-integration-user.apex",
        "h13_sf_pw_token",
        True,
        r"""
        // Anonymous Apex - run in UAT after a sandbox refresh.
        // Login for the ETL is username + password + security token (concatenated), see below.
        User u = [SELECT Id FROM User WHERE Username = 'etl.integration@calderic.co.uk.uat' LIMIT 1];
        System.resetPassword(u.Id, true);
        // ETL (Informatica) connection password field value after refresh:
        // {V}
        System.debug('reset done for ' + u.Id);
        """,
    ),
    T(
        "crm-salesforce/scripts/etl/dataloader/process-conf.xml",
        "h13_sf_security_token",
        True,
        r"""
        <!DOCTYPE beans PUBLIC "-//SPRING//DTD BEAN//EN" "http://www.springframework.org/dtd/spring-beans.dtd">
        <beans>
          <bean id="policyUpsert" class="com.salesforce.dataloader.process.ProcessRunner" scope="prototype">
            <description>Nightly upsert of in-force policies into Policy__c</description>
            <property name="name" value="policyUpsert"/>
            <property name="configOverrideMap">
              <map>
                <entry key="sfdc.endpoint" value="https://calderic.my.salesforce.com"/>
                <entry key="sfdc.username" value="etl.integration@calderic.co.uk"/>
                <!-- password is the encrypted value in config.properties; the security token is appended by the job -->
                <entry key="sfdc.securityToken" value="{V}"/>
                <entry key="process.operation" value="upsert"/>
                <entry key="sfdc.externalIdField" value="Policy_Number__c"/>
                <entry key="dataAccess.name" value="/data/exports/policies.csv"/>
              </map>
            </property>
          </bean>
        </beans>
        """,
    ),
    T(
        "crm-salesforce/scripts/etl/dataloader/config.properties",
        "h13_enc_hex",
        False,
        r"""
        # Data Loader CLI: sfdc.password is encrypted with encrypt.sh -e <password> key.txt
        sfdc.endpoint=https://calderic.my.salesforce.com
        sfdc.username=etl.integration@calderic.co.uk
        sfdc.password={V}
        process.encryptionKeyFile=/opt/dataloader/key.txt
        sfdc.loadBatchSize=200
        """,
    ),
    T(
        "crm-salesforce/.sfdx/sfdx-auth-url.txt",
        "h13_sf_access_token",
        True,
        r"""
        # sfdx auth for the UAT sandbox: the auth URL itself is in the CI secret SF_AUTH_URL.
        # access token captured during the cutover call (sf org display --verbose), expires with the session
        # {V}
        # instance: https://calderic--uat.sandbox.my.salesforce.com
        """,
    ),
    T(
        "crm-salesforce/scripts/curl-query.sh",
        "h13_sf_access_token",
        True,
        r"""
        #!/usr/bin/env bash
        # quick SOQL check used during INC-3107 (claims not syncing); delete after the post-mortem
        set -euo pipefail
        INSTANCE=https://calderic.my.salesforce.com
        curl -s "$INSTANCE/services/data/v61.0/query?q=SELECT+Id,Name,Status__c+FROM+Claim__c+WHERE+LastModifiedDate=TODAY" \
          -H "Authorization: Bearer {V}" \
          -H "Accept: application/json" | jq '.records | length'
        """,
    ),
    T(
        "crm-salesforce/force-app/main/default/classes/ClaimSelectorTest.cls",
        "h13_sf_id",
        False,
        r"""
        @IsTest
        private class ClaimSelectorTest {
            // record ids from the full-copy sandbox, used only as fixture keys (SeeAllData=false)
            private static final String ACCOUNT_ID = '{V}';
            private static final String CONTACT_ID = '{V2}';
            private static final String CASE_ID = '{V3}';

            @IsTest
            static void selectsOpenClaims() {
                Test.startTest();
                List<Claim__c> result = new ClaimSelector().openForAccount(ACCOUNT_ID);
                Test.stopTest();
                System.assertEquals(0, result.size());
            }
        }
        """,
    ),
    T(
        "crm-salesforce/force-app/main/default/labels/CustomLabels.labels-meta.xml",
        "h13_i18n_es",
        False,
        r"""
        <?xml version="1.0" encoding="UTF-8"?>
        <CustomLabels xmlns="http://soap.sforce.com/2006/04/metadata">
            <labels>
                <fullName>IVR_PasswordHelp_es</fullName>
                <language>es</language>
                <protected>false</protected>
                <shortDescription>IVR password help (Spanish)</shortDescription>
                <value>{V}</value>
            </labels>
            <labels>
                <fullName>IVR_PasswordExpired_es</fullName>
                <language>es</language>
                <protected>false</protected>
                <shortDescription>IVR password expired (Spanish)</shortDescription>
                <value>{V2}</value>
            </labels>
        </CustomLabels>
        """,
    ),
    T(
        "crm-salesforce/force-app/main/default/customMetadata/Integration_Setting.Twilio.md-meta.xml",
        "h13_twilio_token",
        True,
        r"""
        <?xml version="1.0" encoding="UTF-8"?>
        <CustomMetadata xmlns="http://soap.sforce.com/2006/04/metadata" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
            <label>Twilio</label>
            <protected>true</protected>
            <values>
                <field>Account_Sid__c</field>
                <value xsi:type="xsd:string">AC2b7e9c41d08f5a3e6c1b4d7f0a9e2c5b</value>
            </values>
            <values>
                <field>Auth_Token__c</field>
                <value xsi:type="xsd:string">{V}</value>
            </values>
            <values>
                <field>From_Number__c</field>
                <value xsi:type="xsd:string">+441615550199</value>
            </values>
        </CustomMetadata>
        """,
    ),
]

# ====================================================================== mobile app backend (Node/TypeScript)
TEMPLATES += [
    T(
        "mobile-backend/.env",
        "h13_pw",
        True,
        r"""
        NODE_ENV=development
        PORT=3000
        DATABASE_URL=postgres://app_api:{V}@pg-mobile-dev.cm.internal:5432/mobile
        REDIS_URL=redis://:{V2}@redis-mobile-dev.cm.internal:6379/0
        JWT_ISSUER=https://auth-dev.calderic.co.uk
        CLAIMS_API_BASE=https://claims-api-dev.cm.internal
        LOG_LEVEL=debug
        """,
    ),
    T(
        "mobile-backend/.env.production",
        "h13_fcm_server_key",
        True,
        r"""
        NODE_ENV=production
        PORT=8080
        # legacy FCM HTTP API (deprecated) - still used by the claim-status push until v5 app rollout
        FCM_SERVER_KEY={V}
        APNS_KEY_ID=7QX2K9LM4B
        APNS_TEAM_ID=R4D8T2WQ9N
        APNS_KEY_PATH=/etc/mobile/apns/AuthKey_7QX2K9LM4B.p8
        """,
    ),
    T(
        "mobile-backend/.env.sample",
        "h13_token_placeholder",
        False,
        r"""
        NODE_ENV=development
        DATABASE_URL=postgres://app_api:password@localhost:5432/mobile
        FCM_SERVER_KEY={V}
        TELEMATICS_API_KEY={V2}
        PRINTMAIL_API_KEY={V3}
        SLACK_BOT_TOKEN={V4}
        """,
    ),
    T(
        "mobile-backend/src/config/secrets.ts",
        "h13_ref_node",
        False,
        r"""
        import { z } from "zod";

        const schema = z.object({
          dbPassword: z.string().min(1),
          fcmServerKey: z.string().min(1),
          telematicsApiKey: z.string().min(1),
        });

        export function loadSecrets(config: { get<T>(k: string): T }, secrets: { get(k: string): Promise<string> }) {
          return schema.parseAsync({
            dbPassword: {V},
            fcmServerKey: {V2},
            telematicsApiKey: {V3},
          });
        }
        """,
    ),
    T(
        "mobile-backend/src/auth/jwt.ts",
        "h13_b64_secret",
        True,
        r"""
        import jwt from "jsonwebtoken";

        // HS256 secret shared with the claims API for customer session tokens.
        // Moving to RS256 + JWKS in MOB-512.
        const JWT_SECRET = process.env.JWT_SECRET ?? "{V}";

        export interface CustomerClaims {
          sub: string;
          policyNumbers: string[];
        }

        export function sign(claims: CustomerClaims): string {
          return jwt.sign(claims, JWT_SECRET, { algorithm: "HS256", expiresIn: "15m", issuer: "mobile-backend" });
        }

        export function verify(token: string): CustomerClaims {
          return jwt.verify(token, JWT_SECRET, { issuer: "mobile-backend" }) as CustomerClaims;
        }
        """,
    ),
    T(
        "mobile-backend/src/integrations/printmail.ts",
        "h13_printmail_key",
        True,
        r"""
        import axios from "axios";

        const client = axios.create({
          baseURL: "https://api.docuvia.co.uk/v1",
          timeout: 15_000,
          headers: {
            // TODO: read from Secrets Manager (MOB-477)
            "X-Api-Key": "{V}",
          },
        });

        export async function requestPaperCopy(policyNumber: string, address: string[]): Promise<string> {
          const { data } = await client.post("/letters", {
            template: "policy-schedule",
            reference: policyNumber,
            address,
          });
          return data.letterId as string;
        }
        """,
    ),
    T(
        "mobile-backend/src/integrations/printmail.test.ts",
        "h13_fake",
        False,
        r"""
        import nock from "nock";
        import { requestPaperCopy } from "./printmail";

        describe("requestPaperCopy", () => {
          beforeAll(() => {
            process.env.PRINTMAIL_API_KEY = "{V}";
          });

          it("returns the letter id", async () => {
            nock("https://api.docuvia.co.uk", { reqheaders: { "x-api-key": "{V2}" } })
              .post("/v1/letters")
              .reply(201, { letterId: "LTR-000123" });
            await expect(requestPaperCopy("CM-HOM-2024-0012345", ["1 High St", "Leeds"])).resolves.toBe("LTR-000123");
          });
        });
        """,
    ),
    T(
        "mobile-backend/src/push/apns.ts",
        "h13_p8_key",
        True,
        r"""
        import apn from "@parse/node-apn";

        // Inlined because the container image had no volume for the .p8 (hotfix 2025-02-03)
        const APNS_KEY = `{V}`;

        export const provider = new apn.Provider({
          token: { key: APNS_KEY, keyId: "7QX2K9LM4B", teamId: "R4D8T2WQ9N" },
          production: true,
        });
        """,
    ),
    T(
        "mobile-backend/src/db/knexfile.ts",
        "h13_default_pg",
        True,
        r"""
        import type { Knex } from "knex";

        const config: Record<string, Knex.Config> = {
          development: {
            client: "pg",
            connection: {
              host: "pg-mobile-dev.cm.internal",
              user: "postgres",
              password: process.env.PGPASSWORD || "{V}",
              database: "mobile",
            },
            migrations: { directory: "./migrations" },
          },
          production: {
            client: "pg",
            connection: process.env.DATABASE_URL,
            pool: { min: 2, max: 20 },
          },
        };

        export default config;
        """,
    ),
    T(
        "mobile-backend/package-lock.excerpt.json",
        "h13_sri",
        False,
        r"""
        {
          "name": "calderic-mobile-backend",
          "lockfileVersion": 3,
          "packages": {
            "node_modules/jsonwebtoken": {
              "version": "9.0.2",
              "resolved": "https://registry.npmjs.org/jsonwebtoken/-/jsonwebtoken-9.0.2.tgz",
              "integrity": "{V}"
            },
            "node_modules/axios": {
              "version": "1.7.7",
              "resolved": "https://registry.npmjs.org/axios/-/axios-1.7.7.tgz",
              "integrity": "{V2}"
            }
          }
        }
        """,
    ),
    T(
        "mobile-backend/.npmrc",
        "h13_npm",
        True,
        r"""
        @calderic:registry=https://npm.pkg.github.com
        //npm.pkg.github.com/:_authToken={V}
        //registry.npmjs.org/:_authToken={V2}
        save-exact=true
        """,
    ),
    T(
        "mobile-backend/.npmrc.ci",
        "h13_ref_ci",
        False,
        r"""
        @calderic:registry=https://npm.pkg.github.com
        //npm.pkg.github.com/:_authToken={V}
        always-auth=true
        """,
    ),
    T(
        "mobile-backend/src/routes/login.ts",
        "h13_role_word",
        False,
        r"""
        import { Router } from "express";
        import { body, validationResult } from "express-validator";

        export const router = Router();

        router.post(
          "/login",
          body("email").isEmail(),
          body("{V}").isLength({ min: 12 }),
          async (req, res) => {
            const errors = validationResult(req);
            if (!errors.isEmpty()) return res.status(400).json({ errors: errors.array() });
            const { email, password } = req.body as { email: string; password: string };
            const session = await req.app.locals.auth.login(email, password);
            res.json({ token: session.token, field: "{V2}" });
          },
        );
        """,
    ),
    T(
        "mobile-backend/src/integrations/slackAlerts.ts",
        "h13_slack_webhook",
        True,
        r"""
        // Posts app-store review alerts and crash spikes to #mobile-alerts
        const WEBHOOK = process.env.SLACK_WEBHOOK_URL || "{V}";

        export async function alert(text: string): Promise<void> {
          await fetch(WEBHOOK, {
            method: "POST",
            headers: { "Content-Type": "application/json" },
            body: JSON.stringify({ text }),
          });
        }
        """,
    ),
]

# ====================================================================== mobile apps (Kotlin, Swift)
TEMPLATES += [
    T(
        "mobile-android/gradle.properties",
        "h13_pw",
        True,
        r"""
        org.gradle.jvmargs=-Xmx4g -Dfile.encoding=UTF-8
        android.useAndroidX=true
        kotlin.code.style=official
        # release signing (upload key) - CI overrides these from the keystore secret
        CALDERIC_UPLOAD_STORE_FILE=../keystore/calderic-upload.jks
        CALDERIC_UPLOAD_STORE_PASSWORD={V}
        CALDERIC_UPLOAD_KEY_ALIAS=calderic-upload
        CALDERIC_UPLOAD_KEY_PASSWORD={V2}
        """,
    ),
    T(
        "mobile-android/app/build.gradle.kts",
        "h13_ref_ci",
        False,
        r"""
        plugins {
            id("com.android.application")
            id("org.jetbrains.kotlin.android")
            id("com.google.gms.google-services")
        }

        android {
            namespace = "uk.co.calderic.mobile"
            compileSdk = 35
            defaultConfig {
                applicationId = "uk.co.calderic.mobile"
                minSdk = 26
                targetSdk = 35
                versionCode = 5012
                versionName = "5.0.12"
            }
            signingConfigs {
                create("release") {
                    storeFile = file(System.getenv("UPLOAD_STORE_FILE") ?: "../keystore/calderic-upload.jks")
                    storePassword = "{V}"
                    keyAlias = "calderic-upload"
                    keyPassword = "{V2}"
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
    ),
    T(
        "mobile-android/app/src/main/res/values/strings.xml",
        "h13_google_key",
        True,
        r"""
        <?xml version="1.0" encoding="utf-8"?>
        <resources>
            <string name="app_name">Calderic</string>
            <string name="claim_photo_hint">Take a photo of the damage</string>
            <!-- Maps SDK key: restricted to uk.co.calderic.mobile + release SHA-1? (check console) -->
            <string name="google_maps_key" translatable="false">{V}</string>
        </resources>
        """,
    ),
    T(
        "mobile-android/app/src/main/res/values-pl/strings.xml",
        "h13_i18n_pl",
        False,
        r"""
        <?xml version="1.0" encoding="utf-8"?>
        <resources>
            <string name="login_password_label">Hasło</string>
            <string name="login_password_error">{V}</string>
            <string name="login_forgot">{V2}</string>
        </resources>
        """,
    ),
    T(
        "mobile-android/app/src/test/java/uk/co/calderic/mobile/auth/LoginViewModelTest.kt",
        "h13_fake",
        False,
        r"""
        package uk.co.calderic.mobile.auth

        import kotlinx.coroutines.test.runTest
        import org.junit.Assert.assertEquals
        import org.junit.Test

        class LoginViewModelTest {
            private val fakeRepo = FakeAuthRepository(validPassword = "{V}")

            @Test
            fun `wrong password shows error`() = runTest {
                val vm = LoginViewModel(fakeRepo)
                vm.login("jan.nowak@example.com", "{V2}")
                assertEquals(LoginState.Error, vm.state.value)
            }
        }
        """,
    ),
    T(
        "mobile-android/app/google-services.json",
        "h13_google_client_id",
        False,
        r"""
        {
          "project_info": {
            "project_number": "418203557719",
            "project_id": "calderic-mobile-prod",
            "storage_bucket": "calderic-mobile-prod.appspot.com"
          },
          "client": [
            {
              "client_info": {
                "mobilesdk_app_id": "1:418203557719:android:6b2f9e1c4d7a3e85",
                "android_client_info": { "package_name": "uk.co.calderic.mobile" }
              },
              "oauth_client": [
                { "client_id": "{V}", "client_type": 3 },
                { "client_id": "{V2}", "client_type": 1 }
              ]
            }
          ],
          "configuration_version": "1"
        }
        """,
    ),
    T(
        "mobile-android/keystore/upload-cert-fingerprints.md",
        "h13_fingerprint",
        False,
        r"""
        # Android signing certificate fingerprints

        Needed for Firebase, Google Sign-In and the Maps key restriction. Not secret.

        - Upload key SHA-1: `{V}`
        - Upload key SHA-256: `{V2}`
        - Play app signing SHA-256: `{V3}`

        Print them with `keytool -list -v -keystore calderic-upload.jks -alias calderic-upload`.
        """,
    ),
    T(
        "mobile-ios/Calderic/Config/Secrets.example.xcconfig",
        "h13_token_placeholder",
        False,
        r"""
        // Copy to Secrets.xcconfig (git-ignored) and fill in
        GOOGLE_MAPS_API_KEY = {V}
        TELEMATICS_SDK_KEY = {V2}
        CLAIMS_API_HOST = api-dev.calderic.co.uk
        """,
    ),
    T(
        "mobile-ios/Calderic/Services/ClaimPhotoUploader.swift",
        "h13_azure_storage_key",
        True,
        r"""
        import Foundation

        /// Uploads claim photos straight to blob storage (old path; the new one asks the API for a SAS).
        struct ClaimPhotoUploader {
            private let account = "stcmclaimsprod"
            private let container = "claim-photos"
            // shared key auth - to be removed with iOS 5.1
            private let accountKey = "{V}"

            func upload(_ data: Data, name: String) async throws {
                var request = URLRequest(url: URL(string: "https://\(account).blob.core.windows.net/\(container)/\(name)")!)
                request.httpMethod = "PUT"
                request.setValue("BlockBlob", forHTTPHeaderField: "x-ms-blob-type")
                request.setValue(SharedKeySigner(account: account, key: accountKey).sign(request), forHTTPHeaderField: "Authorization")
                _ = try await URLSession.shared.upload(for: request, from: data)
            }
        }
        """,
    ),
    T(
        "mobile-ios/Calderic/Resources/it.lproj/Localizable.strings",
        "h13_i18n_it",
        False,
        r"""
        /* Login */
        "login.password.placeholder" = "Password";
        "login.password.error" = "{V}";
        "login.forgot" = "{V2}";
        "session.expired" = "{V3}";
        """,
    ),
    T(
        "mobile-ios/fastlane/Fastfile",
        "h13_pw",
        True,
        r"""
        default_platform(:ios)

        platform :ios do
          desc "Build and upload to TestFlight"
          lane :beta do
            # match repo passphrase; should be MATCH_PASSWORD in CI but the Mac mini has it here
            ENV["MATCH_PASSWORD"] ||= "{V}"
            match(type: "appstore", readonly: true, git_url: "git@github.com:calderic/ios-certificates.git")
            increment_build_number(xcodeproj: "Calderic.xcodeproj")
            build_app(scheme: "Calderic", export_method: "app-store")
            upload_to_testflight(skip_waiting_for_build_processing: true)
          end
        end
        """,
    ),
    T(
        "mobile-ios/fastlane/api_key.json",
        "h13_p8_key",
        True,
        r"""
        {
          "key_id": "D83KQ4X2LZ",
          "issuer_id": "69a6de7f-03c4-47e3-e053-5b8c7c11a4d1",
          "key": "{V}",
          "in_house": false
        }
        """,
    ),
    T(
        "mobile-ios/fastlane/Appfile",
        "h13_apple_id",
        False,
        r"""
        app_identifier("uk.co.calderic.mobile")
        apple_id("mobile-releases@calderic.co.uk")
        itc_team_id("{V}")
        team_id("{V2}")
        """,
    ),
]

# ====================================================================== ops (PowerShell, Bash)
TEMPLATES += [
    T(
        "ops-scripts/windows/Backup-ClaimsSql.ps1",
        "h13_pw",
        True,
        r"""
        # Nightly copy-only backup of the claims DB to the DR share. Scheduled task on sql-claims-prd01.
        Import-Module SqlServer
        $server   = 'sql-claims-prd01.cm.internal'
        $share    = '\\nas-dr01.cm.internal\sqlbackup\claims'
        $sqlUser  = 'backup_op'
        $sqlPass  = '{V}'
        $secure   = ConvertTo-SecureString $sqlPass -AsPlainText -Force
        $cred     = New-Object System.Management.Automation.PSCredential($sqlUser, $secure)

        $stamp = Get-Date -Format 'yyyyMMdd_HHmm'
        Backup-SqlDatabase -ServerInstance $server -Database 'Claims' -Credential $cred `
            -BackupFile "$share\Claims_$stamp.bak" -CopyOnly -CompressionOption On

        # map the DR share with the service account (net use needs the plain password)
        net use Z: $share /user:CM\svc_sqlbackup {V2} /persistent:no
        Get-ChildItem Z:\ -Filter *.bak | Where-Object LastWriteTime -lt (Get-Date).AddDays(-14) | Remove-Item
        net use Z: /delete
        """,
    ),
    T(
        "ops-scripts/windows/New-ClaimsHandlerAccount.ps1",
        "h13_weak_pw",
        True,
        r"""
        param(
            [Parameter(Mandatory)] [string] $SamAccountName,
            [Parameter(Mandatory)] [string] $DisplayName
        )
        # Service desk: initial password, user must change at next logon
        $initial = ConvertTo-SecureString '{V}' -AsPlainText -Force
        New-ADUser -Name $DisplayName -SamAccountName $SamAccountName `
            -Path 'OU=Claims,OU=Users,DC=cm,DC=internal' `
            -AccountPassword $initial -Enabled $true -ChangePasswordAtLogon $true
        Add-ADGroupMember -Identity 'GG-Claims-Handlers' -Members $SamAccountName
        """,
    ),
    T(
        "ops-scripts/windows/Rotate-TpaSftpPassword.ps1",
        "h13_ref_ps",
        False,
        r"""
        # Rotates the TPA SFTP password in Key Vault and tells Harrow's portal (WinSCP .NET assembly)
        Add-Type -Path 'C:\Program Files (x86)\WinSCP\WinSCPnet.dll'
        $current = {V}
        $new = [System.Web.Security.Membership]::GeneratePassword(24, 4)

        $options = New-Object WinSCP.SessionOptions -Property @{
            Protocol = [WinSCP.Protocol]::Sftp
            HostName = 'sftp.harrowclaims.co.uk'
            PortNumber = 2222
            UserName = 'calderic_fnol'
            Password = $current
            SshHostKeyFingerprint = 'ssh-ed25519 255 xq2mJk0W8pNcTz6YvB1rLd9uHf3sAe7oKi5gQn4jRwU'
        }
        Set-AzKeyVaultSecret -VaultName kv-cm-ops -Name sftp-tpa -SecretValue (ConvertTo-SecureString $new -AsPlainText -Force)
        """,
    ),
    T(
        "ops-scripts/windows/Test-IvrDb.ps1",
        "h13_ref_ps",
        False,
        r"""
        $cs = "Server=sql-ivr-prd01.cm.internal;Database=IVR;User Id=ivr_app;Password=$({V});"
        $conn = New-Object System.Data.SqlClient.SqlConnection $cs
        $conn.Open(); Write-Host "IVR DB reachable: $($conn.State)"; $conn.Close()
        """,
    ),
    T(
        "ops-scripts/linux/tpa_fnol_push.sh",
        "h13_pw",
        True,
        r"""
        #!/usr/bin/env bash
        # Pushes FNOL CSV extracts to the TPA. Cron on batch-lnx02: */10 * * * *
        set -euo pipefail

        SRC=/data/outbound/fnol
        ARCHIVE=/data/archive/fnol
        TPA_HOST=sftp.harrowclaims.co.uk
        TPA_PORT=2222
        TPA_USER=calderic_fnol
        export SSHPASS='{V}'

        shopt -s nullglob
        for f in "$SRC"/FNOL_*.csv; do
          sshpass -e sftp -oBatchMode=no -P "$TPA_PORT" "$TPA_USER@$TPA_HOST" <<EOF2
        put $f /inbound/fnol/
        bye
        EOF2
          mv "$f" "$ARCHIVE/"
        done
        """,
    ),
    T(
        "ops-scripts/linux/printmail_upload.sh",
        "h13_ref_sh",
        False,
        r"""
        #!/usr/bin/env bash
        # Uploads the nightly renewal print run to Docuvia (print-and-mail house)
        set -euo pipefail
        RUN_DATE=$(date +%Y%m%d)
        PM_USER=calderic_renewals
        PM_PASS={V}
        lftp -u "$PM_USER,$PM_PASS" sftp://sftp.docuvia.co.uk -e "mirror -R /data/print/$RUN_DATE /incoming/$RUN_DATE; bye"
        """,
    ),
    T(
        "ops-scripts/linux/printmail_upload_v1.sh",
        "h13_url_pw",
        True,
        r"""
        #!/bin/bash
        # v1 of the renewal print upload (kept for the re-run procedure in RB-207)
        RUN_DATE=${1:-$(date +%Y%m%d)}
        PM_PASS="${PM_PASS:-{V}}"
        lftp -u "calderic_renewals,$PM_PASS" sftp://sftp.docuvia.co.uk \
             -e "mirror -R /data/print/$RUN_DATE /incoming/$RUN_DATE; bye"
        echo "uploaded $RUN_DATE"
        """,
    ),
    T(
        "ops-scripts/linux/check_rabbit.sh",
        "h13_default_rabbit",
        True,
        r"""
        #!/usr/bin/env bash
        # Nagios check for the claims RabbitMQ (mq-claims-prd01) - queue depth on fnol-inbound
        HOST=mq-claims-prd01.cm.internal
        DEPTH=$(curl -s -u guest:{V} "http://$HOST:15672/api/queues/%2F/fnol-inbound" | jq '.messages')
        if [ "${DEPTH:-0}" -gt 5000 ]; then
          echo "CRITICAL - fnol-inbound depth $DEPTH"; exit 2
        fi
        echo "OK - fnol-inbound depth $DEPTH"; exit 0
        """,
    ),
    T(
        "ops-scripts/linux/restore_pas_replica.sh",
        "h13_racf_pw",
        True,
        r"""
        #!/bin/bash
        # Rebuilds the PAS reporting replica from last night's RMAN backup (DBA on-call only)
        export ORACLE_SID=PASREP
        export ORACLE_HOME=/u01/app/oracle/product/19.0.0/dbhome_1
        rman target sys/{V}@PASREP auxiliary / <<EOF2
        run {
          duplicate target database to PASREP from active database nofilenamecheck;
        }
        EOF2
        sqlplus -s system/{V2}@PASREP @/opt/dba/sql/post_refresh.sql
        """,
    ),
    T(
        "ops-scripts/linux/known_hosts_tpa",
        "h13_ssh_pub",
        False,
        r"""
        # host keys of partner SFTP servers (pinned); update only after confirming with the partner
        [sftp.harrowclaims.co.uk]:2222 {V}
        sftp.docuvia.co.uk {V2}
        """,
    ),
    T(
        "ops-scripts/linux/authorized_keys.batch01",
        "h13_ssh_pub",
        False,
        r"""
        # batch01 on batch-lnx02 - managed by Ansible role cm_batch_users
        {V}
        from="10.40.0.0/16" {V2}
        """,
    ),
    T(
        "ops-scripts/linux/keys/printmail_id_ed25519",
        "h13_openssh_key",
        True,
        r"""
        {V}
        """,
    ),
    T(
        "ops-scripts/windows/keys/tpa-sftp.ppk",
        "h13_ppk",
        True,
        r"""
        {V}
        """,
    ),
    T(
        "ops-scripts/linux/.netrc",
        "h13_pw",
        True,
        r"""
        machine nexus.cm.internal
          login svc-ops-tools
          password {V}
        machine ftp.mainframe.cm.internal
          login BATCH01
          password {V2}
        """,
    ),
    T(
        "ops-scripts/linux/.pgpass",
        "h13_url_pw",
        True,
        r"""
        # hostname:port:database:username:password
        pg-mobile-prd.cm.internal:5432:mobile:ops_ro:{V}
        pg-mobile-prd.cm.internal:5432:*:replicator:{V2}
        """,
    ),
    T(
        "ops-scripts/linux/ansible/group_vars/batch/vault.yml",
        "h13_ansible_vault",
        False,
        r"""
        # encrypted with ansible-vault (id: batch@prompt)
        vault_tpa_sftp_password: !vault |
          {IV}
        vault_printmail_password: !vault |
          {IV2}
        """,
    ),
    T(
        "ops-scripts/linux/ansible/group_vars/batch/vars.yml",
        "h13_pw",
        True,
        r"""
        cm_batch_users:
          - name: batch01
            shell: /bin/bash
        tpa_sftp_host: sftp.harrowclaims.co.uk
        tpa_sftp_user: calderic_fnol
        tpa_sftp_password: "{{ vault_tpa_sftp_password }}"
        # temporary override while the vault file is re-keyed (remove after 2025-06-30)
        printmail_password: "{V}"
        db2_batch_password: "{V2}"
        """,
    ),
]

# ====================================================================== batch (JCL, copybook configs)
TEMPLATES += [
    T(
        "batch-jcl/PROCLIB/CMRNW01.jcl",
        "h13_racf_pw",
        True,
        r"""
        //CMRNW01  JOB (ACCT,RNW),'RENEWAL EXTRACT',CLASS=A,MSGCLASS=X,
        //             NOTIFY=&SYSUID,USER=BATCH01,PASSWORD={V}
        //*-------------------------------------------------------------------
        //* NIGHTLY RENEWAL INVITE EXTRACT FOR PRINT-AND-MAIL (DOCUVIA)
        //* OWNER: POLICY ADMIN BATCH  -  ESCALATE TO OPS BRIDGE X4410
        //*-------------------------------------------------------------------
        //STEP010  EXEC PGM=IKJEFT01,DYNAMNBR=20
        //STEPLIB  DD DSN=DSN.V13.SDSNLOAD,DISP=SHR
        //SYSTSPRT DD SYSOUT=*
        //SYSTSIN  DD *
          DSN SYSTEM(DB2P)
          RUN PROGRAM(CMRNWEXT) PLAN(CMRNWPLN)
          END
        /*
        //RNWOUT   DD DSN=CM.PROD.RENEWAL.EXTRACT(+1),
        //            DISP=(NEW,CATLG,DELETE),SPACE=(CYL,(50,10),RLSE)
        """,
    ),
    T(
        "batch-jcl/PROCLIB/CMFTP02.jcl",
        "h13_pw",
        True,
        r"""
        //CMFTP02  JOB (ACCT,FTP),'SEND TO TPA',CLASS=A,MSGCLASS=X
        //*-------------------------------------------------------------------
        //* SENDS THE DAILY CLAIMS BORDEREAU TO HARROW (TPA) VIA FTP
        //*-------------------------------------------------------------------
        //STEP010  EXEC PGM=FTP,PARM='ftp.harrowclaims.co.uk (EXIT'
        //SYSPRINT DD SYSOUT=*
        //OUTPUT   DD SYSOUT=*
        //INPUT    DD *
        calderic_bdx
        {V}
        binary
        cd /inbound/bordereau
        put 'CM.PROD.CLAIMS.BDX(0)' bdx_daily.dat
        quit
        /*
        """,
    ),
    T(
        "batch-jcl/PROCLIB/CMFTP03.jcl",
        "h13_ref_jcl",
        False,
        r"""
        //CMFTP03  JOB (ACCT,FTP),'SEND TO PRINT',CLASS=A,MSGCLASS=X
        //         SET PWD='{V}'
        //*-------------------------------------------------------------------
        //* PRINT FILE TO DOCUVIA. PASSWORD IS SUPPLIED BY THE SCHEDULER
        //* (CONTROL-M AUTOEDIT %%PM_PASS) - DO NOT HARDCODE
        //*-------------------------------------------------------------------
        //STEP010  EXEC PGM=FTP,PARM='sftp.docuvia.co.uk (EXIT'
        //SYSPRINT DD SYSOUT=*
        //NETRC    DD DSN=CM.SECURE.NETRC,DISP=SHR
        //INPUT    DD *
        binary
        put 'CM.PROD.PRINT.RENEWALS(0)' renewals.afp
        quit
        /*
        """,
    ),
    T(
        "batch-jcl/PROCLIB/CMDB2U1.jcl",
        "h13_racf_pw",
        True,
        r"""
        //CMDB2U1  JOB (ACCT,DB2),'UNLOAD POLICY',CLASS=B,MSGCLASS=X
        //*
        //* UNLOAD OF POLICY TABLE FOR THE PRICING DATA TEAM (WEEKLY)
        //*
        //UNLOAD   EXEC PGM=IKJEFT01
        //SYSTSPRT DD SYSOUT=*
        //SYSTSIN  DD *
          DSN SYSTEM(DB2P)
          RUN PROGRAM(DSNTIAUL) PLAN(DSNTIAUL) PARMS('SQL')
          END
        /*
        //SYSIN    DD *
          CONNECT TO DB2P USER PRICEXT USING {V};
          SELECT POLICY_NO, PRODUCT, START_DT, PREMIUM
            FROM CMPAS.POLICY
           WHERE STATUS = 'INFORCE';
        /*
        """,
    ),
    T(
        "batch-jcl/COPYLIB/CMCFGREC.cpy",
        "h13_racf_pw",
        True,
        r"""
        000100*================================================================*
        000200* CMCFGREC - RUNTIME CONFIG RECORD FOR CMRNWEXT                   *
        000300* VALUES BELOW ARE THE PROD DEFAULTS LOADED BY CMCFGLD            *
        000400*================================================================*
        000500 01  CM-CONFIG-RECORD.
        000600     05  CFG-DB2-SUBSYS        PIC X(04)  VALUE 'DB2P'.
        000700     05  CFG-DB2-USER          PIC X(08)  VALUE 'PRICEXT '.
        000800     05  CFG-DB2-PASSWORD      PIC X(08)  VALUE '{V}'.
        000900     05  CFG-FTP-HOST          PIC X(40)  VALUE
        001000         'sftp.docuvia.co.uk'.
        001100     05  CFG-FTP-USER          PIC X(16)  VALUE
        001200         'calderic_renewals'.
        001300     05  CFG-RETRY-COUNT       PIC 9(02)  VALUE 03.
        """,
    ),
    T(
        "batch-jcl/COPYLIB/CMPOLREC.cpy",
        "h13_policy_no",
        False,
        r"""
        000100*================================================================*
        000200* CMPOLREC - POLICY EXTRACT RECORD (LRECL 200)                    *
        000300* SAMPLE KEYS FOR THE TEST DECK IN CM.TEST.POLICY.SEED:           *
        000400*   {V}                                          *
        000500*   {V2}                                          *
        000600*================================================================*
        000700 01  CM-POLICY-REC.
        000800     05  POL-NUMBER            PIC X(20).
        000900     05  POL-PRODUCT           PIC X(03).
        001000     05  POL-START-DT          PIC 9(08).
        001100     05  POL-PREMIUM           PIC S9(09)V99 COMP-3.
        001200     05  POL-PASSWORD-HINT     PIC X(30).
        001300     05  FILLER                PIC X(126).
        """,
    ),
    T(
        "batch-jcl/PARMLIB/CMSFTPCF.txt",
        "h13_placeholder",
        False,
        r"""
        * SFTP PARAMETERS FOR CMSFTP (CO:Z LAUNCHER) - TEMPLATE, FILLED BY CONTROL-M
        HOST=sftp.harrowclaims.co.uk
        PORT=2222
        USER=calderic_fnol
        PASSWORD={V}
        KNOWNHOSTS=/u/batch01/.ssh/known_hosts
        """,
    ),
    T(
        "batch-jcl/controlm/CM_RENEWALS.xml",
        "h13_ref_jcl",
        False,
        r"""
        <?xml version="1.0" encoding="utf-8"?>
        <DEFTABLE>
          <FOLDER DATACENTER="CMPROD" FOLDER_NAME="CM_RENEWALS">
            <JOB JOBNAME="CMFTP03" MEMNAME="CMFTP03" MEMLIB="CM.PROD.JCL" RUN_AS="BATCH01">
              <VARIABLE NAME="%%PWD" VALUE="{V}"/>
              <VARIABLE NAME="%%RUN_DATE" VALUE="%%ODATE"/>
              <INCOND NAME="CMRNW01-ENDED-OK" ODATE="ODAT" AND_OR="A"/>
            </JOB>
          </FOLDER>
        </DEFTABLE>
        """,
    ),
]

# ====================================================================== infrastructure (Terraform, Helm, Kubernetes)
TEMPLATES += [
    T(
        "infra/terraform/claims/main.tf",
        "h13_pw",
        True,
        r"""
        terraform {
          required_providers {
            azurerm = { source = "hashicorp/azurerm", version = "~> 3.110" }
          }
          backend "azurerm" {
            resource_group_name  = "rg-cm-tfstate"
            storage_account_name = "stcmtfstate"
            container_name       = "claims"
            key                  = "claims.tfstate"
          }
        }

        resource "azurerm_mssql_server" "claims" {
          name                         = "sql-cm-claims-prd"
          resource_group_name          = azurerm_resource_group.claims.name
          location                     = "uksouth"
          version                      = "12.0"
          administrator_login          = "cmsqladmin"
          administrator_login_password = "{V}"
          minimum_tls_version          = "1.2"
        }
        """,
    ),
    T(
        "infra/terraform/claims/sql.tf",
        "h13_ref_tf",
        False,
        r"""
        resource "random_password" "sql_admin" {
          length  = 32
          special = true
        }

        resource "azurerm_mssql_server" "claims_uat" {
          name                         = "sql-cm-claims-uat"
          resource_group_name          = azurerm_resource_group.claims_uat.name
          location                     = "uksouth"
          version                      = "12.0"
          administrator_login          = "cmsqladmin"
          administrator_login_password = {V}
        }

        resource "azurerm_key_vault_secret" "sql_admin" {
          name         = "sql-admin-password"
          value        = {V2}
          key_vault_id = azurerm_key_vault.claims.id
        }
        """,
    ),
    T(
        "infra/terraform/claims/terraform.tfvars",
        "h13_azure_client_secret",
        True,
        r"""
        environment       = "prd"
        location          = "uksouth"
        tenant_id         = "3b1e6a2c-9f4d-4c7e-8a51-2d6b0f9e7c13"
        subscription_id   = "c0d4e2f1-7a8b-4c9d-9e0f-1a2b3c4d5e6f"
        client_id         = "9c2f5e18-6a3b-4d0e-b7c4-1e8f2a6d5b90"
        client_secret     = "{V}"
        alert_email       = "claims-platform@calderic.co.uk"
        """,
    ),
    T(
        "infra/terraform/claims/variables.tf",
        "h13_uuid",
        False,
        r"""
        variable "tenant_id" {
          type    = string
          default = "{V}"
        }

        variable "subscription_id" {
          type    = string
          default = "{V2}"
        }

        variable "client_secret" {
          type      = string
          sensitive = true
        }

        variable "log_analytics_workspace_id" {
          type    = string
          default = "{V3}"
        }
        """,
    ),
    T(
        "infra/terraform/pricing/aws.tf",
        "h13_aws_tf_pair",
        True,
        r"""
        # Pricing sandbox account (data science experiments). Static keys: see SEC-219 exception.
        provider "aws" {
          region     = "eu-west-2"
          {IV}
        }

        resource "aws_s3_bucket" "pricing_scratch" {
          bucket = "cm-pricing-scratch-euw2"
        }
        """,
    ),
    T(
        "infra/terraform/pricing/.terraform.lock.hcl",
        "h13_sha256",
        False,
        r"""
        # This file is maintained automatically by "terraform init".
        # Manual edits may be lost in future updates.

        provider "registry.terraform.io/hashicorp/aws" {
          version     = "5.62.0"
          constraints = "~> 5.0"
          hashes = [
            "h1:8tevkFG+ea/zTG6xf0c4yVwr6Q1Qm6LyMh8PdjUj4OM=",
            "zh:{V}",
            "zh:{V2}",
            "zh:{V3}",
          ]
        }
        """,
    ),
    T(
        "infra/terraform/global/backend.hcl",
        "h13_tfc_token",
        True,
        r"""
        # terraform init -backend-config=backend.hcl   (used by the ops laptop only)
        hostname     = "app.terraform.io"
        organization = "calderic-mutual"
        token        = "{V}"
        """,
    ),
    T(
        "infra/terraform/global/.terraformrc",
        "h13_tfc_token",
        True,
        r"""
        plugin_cache_dir = "$HOME/.terraform.d/plugin-cache"
        credentials "app.terraform.io" {
          token = "{V}"
        }
        """,
    ),
    T(
        "infra/terraform/telematics/secrets.enc.yaml",
        "h13_sops",
        False,
        r"""
        telematics_api_key: {V}
        tpa_client_secret: {V2}
        sops:
            kms: []
            azure_kv:
                - vault_url: https://kv-cm-sops.vault.azure.net
                  name: sops-key
                  version: 6a1f0c2e9b3d4e5f8a7b6c5d4e3f2a1b
                  created_at: "2025-02-14T09:12:44Z"
            lastmodified: "2025-02-14T09:12:45Z"
            mac: {V3}
            version: 3.9.0
        """,
    ),
    T(
        "infra/helm/claims-api/values-prod.yaml",
        "h13_pw",
        True,
        r"""
        replicaCount: 4
        image:
          repository: acrcmprod.azurecr.io/claims/claims-api
          tag: "2025.3.18"
        ingress:
          enabled: true
          className: nginx
          hosts:
            - host: claims-api.calderic.co.uk
              paths: [{ path: /, pathType: Prefix }]
        db:
          host: sql-cm-claims-prd.database.windows.net
          name: Claims
          user: claims_app
          password: "{V}"
        rabbitmq:
          host: mq-claims-prd01.cm.internal
          user: claims
          password: "{V2}"
        resources:
          requests: { cpu: 500m, memory: 768Mi }
          limits: { memory: 1536Mi }
        """,
    ),
    T(
        "infra/helm/claims-api/values.yaml",
        "h13_placeholder",
        False,
        r"""
        # Default values for claims-api. Secrets are provided per environment via values-<env>.yaml
        # from the sops-encrypted overlays, never here.
        replicaCount: 1
        db:
          host: ""
          name: Claims
          user: claims_app
          password: "{V}"
          existingSecret: ""
        rabbitmq:
          user: claims
          password: "{V2}"
        """,
    ),
    T(
        "infra/helm/claims-api/templates/secret.yaml",
        "h13_ref_helm",
        False,
        r"""
        apiVersion: v1
        kind: Secret
        metadata:
          name: {V}
          labels:
            app.kubernetes.io/name: claims-api
        type: Opaque
        stringData:
          DB_PASSWORD: {V2}
          TELEMATICS_API_KEY: {V3}
        """,
    ),
    T(
        "infra/helm/monitoring/values-grafana.yaml",
        "h13_default_grafana",
        True,
        r"""
        # kube-prometheus-stack overrides for the claims AKS cluster (aks-cm-claims-prd)
        grafana:
          enabled: true
          adminUser: admin
          adminPassword: {V}
          ingress:
            enabled: true
            hosts:
              - grafana.claims.cm.internal
        prometheus:
          prometheusSpec:
            retention: 15d
        """,
    ),
    T(
        "infra/k8s/broker-portal/secret.yaml",
        "h13_k8s_b64_pw",
        True,
        r"""
        apiVersion: v1
        kind: Secret
        metadata:
          name: broker-portal-env
          namespace: broker-portal
        type: Opaque
        data:
          DB_USERNAME: YnJva2VyX2FwcA==
          DB_PASSWORD: {V}
          REDIS_PASSWORD: {V2}
        """,
    ),
    T(
        "infra/k8s/broker-portal/sealedsecret.yaml",
        "h13_sealed",
        False,
        r"""
        apiVersion: bitnami.com/v1alpha1
        kind: SealedSecret
        metadata:
          name: broker-portal-env
          namespace: broker-portal
        spec:
          encryptedData:
            DB_PASSWORD: {V}
            REDIS_PASSWORD: {V2}
          template:
            metadata:
              name: broker-portal-env
            type: Opaque
        """,
    ),
    T(
        "infra/k8s/broker-portal/deployment.yaml",
        "h13_k8s_secret_name",
        False,
        r"""
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: broker-portal
          namespace: broker-portal
        spec:
          replicas: 3
          selector:
            matchLabels: { app: broker-portal }
          template:
            metadata:
              labels: { app: broker-portal }
            spec:
              imagePullSecrets:
                - name: {V}
              containers:
                - name: php-fpm
                  image: acrcmprod.azurecr.io/broker/portal:4.12.0
                  env:
                    - name: DB_PASSWORD
                      valueFrom:
                        secretKeyRef:
                          name: {V2}
                          key: DB_PASSWORD
                    - name: APP_KEY
                      valueFrom:
                        secretKeyRef:
                          name: {V3}
                          key: APP_KEY
        """,
    ),
    T(
        "infra/k8s/telematics-ingest/tls-secret.yaml",
        "h13_rsa_pem",
        True,
        r"""
        apiVersion: v1
        kind: Secret
        metadata:
          name: telematics-ingest-tls
          namespace: telematics
        type: kubernetes.io/tls
        stringData:
          tls.key: |
            {IV}
        """,
    ),
    T(
        "infra/k8s/telematics-ingest/ca-configmap.yaml",
        "h13_cert_pem",
        False,
        r"""
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: tracklytix-ca
          namespace: telematics
        data:
          ca.crt: |
            {IV}
        """,
    ),
    T(
        "infra/k8s/mobile-backend/externalsecret.yaml",
        "h13_vault_path",
        False,
        r"""
        apiVersion: external-secrets.io/v1beta1
        kind: ExternalSecret
        metadata:
          name: mobile-backend
        spec:
          refreshInterval: 1h
          secretStoreRef:
            name: cm-secrets
            kind: ClusterSecretStore
          target:
            name: mobile-backend-env
          data:
            - secretKey: DATABASE_PASSWORD
              remoteRef:
                key: {V}
            - secretKey: FCM_SERVER_KEY
              remoteRef:
                key: {V2}
        """,
    ),
    T(
        "infra/k8s/registry/regcred.json",
        "h13_basic_b64",
        True,
        r"""
        {
          "auths": {
            "acrcmprod.azurecr.io": {
              "auth": "{V}"
            },
            "nexus.cm.internal:8443": {
              "auth": "{V2}"
            }
          }
        }
        """,
    ),
    T(
        "infra/k8s/registry/regcred.example.json",
        "h13_example_basic",
        False,
        r"""
        {
          "_note": "example from the Docker docs - replace auth with base64(user:token)",
          "auths": {
            "registry.example.com": {
              "auth": "{V}"
            }
          }
        }
        """,
    ),
]

# ====================================================================== CI (Jenkins, GitHub Actions)
TEMPLATES += [
    T(
        "policy-admin/Jenkinsfile",
        "h13_ref_jenkins",
        False,
        r"""
        pipeline {
            agent { label 'linux-maven' }
            environment {
                NEXUS = credentials('nexus-deploy')
                SONAR_TOKEN = credentials('sonar-pas')
            }
            stages {
                stage('Build') {
                    steps {
                        sh 'mvn -B -s ci/settings-ci.xml clean verify'
                    }
                }
                stage('Sonar') {
                    steps {
                        sh "mvn -B sonar:sonar -Dsonar.token={V}"
                    }
                }
                stage('Deploy snapshot') {
                    when { branch 'develop' }
                    steps {
                        withCredentials([usernamePassword(credentialsId: 'nexus-deploy', usernameVariable: 'U', passwordVariable: 'P')]) {
                            sh 'mvn -B deploy -Dnexus.user=$U -Dnexus.password={V2}'
                        }
                    }
                }
            }
        }
        """,
    ),
    T(
        "claims-platform/Jenkinsfile",
        "h13_sonar",
        True,
        r"""
        pipeline {
            agent { label 'windows-dotnet' }
            stages {
                stage('Restore & build') {
                    steps {
                        bat 'dotnet restore Calderic.Claims.sln'
                        bat 'dotnet build Calderic.Claims.sln -c Release --no-restore'
                    }
                }
                stage('Test') {
                    steps {
                        bat 'dotnet test Calderic.Claims.sln -c Release --no-build --logger trx'
                    }
                }
                stage('Sonar') {
                    steps {
                        // token pasted while the Jenkins credentials plugin was broken (JEN-77)
                        bat 'dotnet sonarscanner begin /k:"calderic-claims" /d:sonar.host.url="https://sonar.cm.internal" /d:sonar.token="{V}"'
                        bat 'dotnet build Calderic.Claims.sln -c Release'
                        bat 'dotnet sonarscanner end /d:sonar.token="{V}"'
                    }
                }
            }
        }
        """,
    ),
    T(
        "ops-scripts/jenkins/trigger-renewal-rerun.sh",
        "h13_jenkins_token",
        True,
        r"""
        #!/usr/bin/env bash
        # Re-runs the renewal print job for a given date from the ops box
        set -euo pipefail
        RUN_DATE=${1:?usage: $0 YYYYMMDD}
        curl -fsS -X POST \
          --user "svc-ops-trigger:{V}" \
          "https://jenkins.cm.internal/job/batch/job/renewal-print/buildWithParameters?RUN_DATE=$RUN_DATE"
        """,
    ),
    T(
        "ops-scripts/jenkins/casc/jenkins.yaml",
        "h13_jenkins_enc",
        False,
        r"""
        jenkins:
          systemMessage: "Calderic CI - managed by JCasC, do not edit in the UI"
          securityRealm:
            ldap:
              configurations:
                - server: ldaps://ldap.cm.internal
                  rootDN: dc=cm,dc=internal
                  managerDN: cn=svc-jenkins,ou=Service,dc=cm,dc=internal
                  managerPasswordSecret: "{V}"
        credentials:
          system:
            domainCredentials:
              - credentials:
                  - usernamePassword:
                      scope: GLOBAL
                      id: nexus-deploy
                      username: svc-pas-release
                      password: "{V2}"
        """,
    ),
    T(
        "pricing-models/.github/workflows/refresh.yml",
        "h13_pw",
        True,
        r"""
        name: monthly-refresh
        on:
          schedule:
            - cron: "0 5 2 * *"
          workflow_dispatch: {}
        jobs:
          refresh:
            runs-on: [self-hosted, pricing]
            env:
              SNOWFLAKE_USER: SVC_PRICING
              # TODO move to secrets.SNOWFLAKE_PASSWORD (runner is internal so "fine for now")
              SNOWFLAKE_PASSWORD: "{V}"
            steps:
              - uses: actions/checkout@v4
              - uses: r-lib/actions/setup-r@v2
              - run: Rscript motor_glm/R/01_extract.R
              - run: python -m pricing_utils.publish --target connect
        """,
    ),
    T(
        "crm-salesforce/.github/workflows/validate.yml",
        "h13_ref_ci",
        False,
        r"""
        name: sf-validate
        on: [pull_request]
        jobs:
          validate:
            runs-on: ubuntu-latest
            steps:
              - uses: actions/checkout@v4
              - run: npm install -g @salesforce/cli
              - name: Authenticate UAT
                run: |
                  echo "{V}" > ./authurl.txt
                  sf org login sfdx-url --sfdx-url-file ./authurl.txt --alias uat
              - run: sf project deploy validate --target-org uat --test-level RunLocalTests
        """,
    ),
    T(
        "infra/.github/workflows/terraform.yml",
        "h13_github_fine",
        True,
        r"""
        name: terraform
        on:
          pull_request:
            paths: ["terraform/**"]
        jobs:
          plan:
            runs-on: ubuntu-latest
            steps:
              - uses: actions/checkout@v4
              - name: Fetch shared modules
                run: |
                  git config --global url."https://x-access-token:{V}@github.com/".insteadOf "https://github.com/"
                  terraform -chdir=terraform/claims init
              - run: terraform -chdir=terraform/claims plan -no-color
        """,
    ),
    T(
        "infra/.github/workflows/image-scan.yml",
        "h13_image_digest",
        False,
        r"""
        name: image-scan
        on:
          schedule:
            - cron: "30 3 * * *"
        jobs:
          scan:
            runs-on: ubuntu-latest
            strategy:
              matrix:
                image:
                  - acrcmprod.azurecr.io/claims/claims-api@{V}
                  - acrcmprod.azurecr.io/broker/portal@{V2}
                  - acrcmprod.azurecr.io/mobile/backend@{V3}
            steps:
              - uses: aquasecurity/trivy-action@0.24.0
                with:
                  image-ref: ${{ matrix.image }}
                  severity: CRITICAL,HIGH
        """,
    ),
    T(
        "infra/.github/workflows/notify.yml",
        "h13_teams_webhook",
        True,
        r"""
        name: notify-release
        on:
          release:
            types: [published]
        jobs:
          teams:
            runs-on: ubuntu-latest
            steps:
              - name: Post to Teams (#platform-releases)
                run: |
                  curl -sS -H 'Content-Type: application/json' \
                    -d '{"text": "Released ${{ github.event.release.tag_name }} of ${{ github.repository }}"}' \
                    '{V}'
        """,
    ),
    T(
        "broker-portal/.github/workflows/ci.yml",
        "h13_docker_pat",
        True,
        r"""
        name: ci
        on: [push]
        jobs:
          test:
            runs-on: ubuntu-latest
            services:
              mysql:
                image: mysql:8.0
                env:
                  MYSQL_DATABASE: broker_portal
                  MYSQL_ALLOW_EMPTY_PASSWORD: "yes"
                ports: ["3306:3306"]
            steps:
              - uses: actions/checkout@v4
              - name: Docker Hub login (rate limits)
                run: echo "{V}" | docker login -u calderic-ci --password-stdin
              - uses: shivammathur/setup-php@v2
                with:
                  php-version: "8.3"
              - run: composer install --no-interaction
              - run: vendor/bin/phpunit
        """,
    ),
    T(
        "ops-scripts/octopus/deploy-claims.ps1",
        "h13_octopus",
        True,
        r"""
        # Creates an Octopus release for the claims platform (used by the release manager)
        param([Parameter(Mandatory)] [string] $Version)
        $octopusUrl = 'https://octopus.cm.internal'
        $apiKey     = '{V}'
        $headers    = @{ 'X-Octopus-ApiKey' = $apiKey }
        $body = @{ ProjectId = 'Projects-41'; Version = $Version } | ConvertTo-Json
        Invoke-RestMethod -Method Post -Uri "$octopusUrl/api/Spaces-1/releases" -Headers $headers -Body $body
        """,
    ),
    T(
        "policy-admin/ci/artifactory-publish.sh",
        "h13_jfrog_key",
        True,
        r"""
        #!/usr/bin/env bash
        # Publishes PAS release artefacts to the group Artifactory (pricing team consumes pas-api jar)
        set -euo pipefail
        VERSION=$(mvn -q help:evaluate -Dexpression=project.version -DforceStdout)
        curl -fsS -H "X-JFrog-Art-Api: {V}" \
          -T "pas-api/target/pas-api-$VERSION.jar" \
          "https://calderic.jfrog.io/artifactory/libs-release-local/uk/co/calderic/pas-api/$VERSION/pas-api-$VERSION.jar"
        """,
    ),
    T(
        "pricing-models/pip.conf",
        "h13_jfrog_ref",
        True,
        r"""
        [global]
        index-url = https://svc-pricing:{V}@calderic.jfrog.io/artifactory/api/pypi/pypi-remote/simple
        timeout = 60
        """,
    ),
    T(
        "pricing-models/requirements.lock",
        "h13_sha256",
        False,
        r"""
        # generated by pip-compile --generate-hashes
        pandas==2.2.2 \
            --hash=sha256:{V} \
            --hash=sha256:{V2}
        snowflake-connector-python==3.12.1 \
            --hash=sha256:{V3}
        """,
    ),
]

# ====================================================================== partners (TPA, telematics vendor, print-and-mail)
TEMPLATES += [
    T(
        "integrations/tpa-harrow/config/harrow.ini",
        "h13_tpa_api_key",
        True,
        r"""
        ; Harrow Claims Solutions (TPA) - REST + SFTP settings for the FNOL bridge
        [api]
        base_url = https://api.harrowclaims.co.uk/v4
        client_code = CALDERIC
        api_key = {V}
        timeout = 30

        [sftp]
        host = sftp.harrowclaims.co.uk
        port = 2222
        user = calderic_fnol
        key_file = /etc/fnol-bridge/keys/harrow_ed25519
        """,
    ),
    T(
        "integrations/tpa-harrow/config/harrow.ini.sample",
        "h13_token_placeholder",
        False,
        r"""
        [api]
        base_url = https://api-sandbox.harrowclaims.co.uk/v4
        client_code = CALDERIC
        api_key = {V}

        [sftp]
        host = sftp-sandbox.harrowclaims.co.uk
        user = calderic_fnol
        password = {V2}
        """,
    ),
    T(
        "integrations/tpa-harrow/fnol_bridge/client.py",
        "h13_ref_py",
        False,
        r"""
        '''REST client for the TPA. Credentials come from the bridge settings object.'''

        import httpx


        class HarrowClient:
            def __init__(self, settings, os, dbutils=None, keyring=None, Variable=None):
                self._http = httpx.Client(base_url="https://api.harrowclaims.co.uk/v4", timeout=30)
                self._key = {V}

            def submit_fnol(self, payload: dict) -> str:
                r = self._http.post("/fnol", json=payload, headers={"X-Api-Key": self._key})
                r.raise_for_status()
                return r.json()["harrowRef"]
        """,
    ),
    T(
        "integrations/tpa-harrow/docs/onboarding-harrow.md",
        "h13_pw",
        True,
        r"""
        # Harrow Claims Solutions - onboarding notes (March 2024)

        Contact: Priya Raman (integration lead), priya.raman@harrowclaims.co.uk

        ## Environments

        | Env     | API                                        | SFTP                                  |
        |---------|--------------------------------------------|---------------------------------------|
        | Sandbox | https://api-sandbox.harrowclaims.co.uk/v4  | sftp-sandbox.harrowclaims.co.uk:2222  |
        | Prod    | https://api.harrowclaims.co.uk/v4          | sftp.harrowclaims.co.uk:2222          |

        ## Credentials we were given

        - Sandbox SFTP: user `calderic_fnol`, password `{V}`
        - Prod SFTP: user `calderic_fnol`, password `{V2}` (Priya sent it by SMS, moved to the vault later)
        - Harrow's support portal: use your own SSO account.

        Bordereaux go to `/inbound/bordereau`, FNOL to `/inbound/fnol`.
        """,
    ),
    T(
        "integrations/tpa-harrow/docs/onboarding-harrow-v2.md",
        "h13_prose_neg",
        False,
        r"""
        # Harrow Claims Solutions - onboarding (updated after the 2025 audit)

        ## Credentials

        - Sandbox SFTP: user `calderic_fnol`, password {V}
        - Prod SFTP: user `calderic_fnol`; password {V2}
        - API key: {V3}

        Never paste credentials into tickets or this page. If you need access, raise an
        access request in ServiceNow (catalogue item "Partner integration access").
        """,
    ),
    T(
        "integrations/telematics-tracklytix/device-provisioning.json",
        "h13_imei",
        False,
        r"""
        {
          "batch": "2025-02-WK3",
          "vendor": "Tracklytix",
          "firmware": "tlx-4.3.0",
          "devices": [
            {"imei": "{V}", "vin": "WF0XXXGCDX8R12345", "policy": "CM-MOT-2025-0007741"},
            {"imei": "{V2}", "vin": "VF1RFB00X63012345", "policy": "CM-MOT-2025-0007802"},
            {"imei": "{V3}", "vin": "ZFA31200000123456", "policy": "CM-MOT-2025-0007810"}
          ]
        }
        """,
    ),
    T(
        "integrations/telematics-tracklytix/webhook_receiver.py",
        "h13_hex_secret",
        True,
        r"""
        '''Receives crash-detection webhooks from Tracklytix and opens an FNOL in the claims platform.'''

        import hashlib
        import hmac

        from fastapi import FastAPI, Header, HTTPException, Request

        app = FastAPI()
        # shared signing secret agreed with Tracklytix (their support ticket TLX-55120)
        WEBHOOK_SECRET = b"{V}"


        @app.post("/webhooks/tracklytix/crash")
        async def crash(request: Request, x_tlx_signature: str = Header(...)):
            body = await request.body()
            expected = hmac.new(WEBHOOK_SECRET, body, hashlib.sha256).hexdigest()
            if not hmac.compare_digest(expected, x_tlx_signature):
                raise HTTPException(status_code=401)
            return {"status": "accepted"}
        """,
    ),
    T(
        "integrations/printmail-docuvia/upload.py",
        "h13_printmail_key",
        True,
        r"""
        '''Upload renewal print runs to Docuvia and poll for the postal manifest.'''

        import sys
        import time

        import requests

        API = "https://api.docuvia.co.uk/v1"
        HEADERS = {"X-Api-Key": "{V}"}


        def upload(zip_path: str) -> str:
            with open(zip_path, "rb") as fh:
                r = requests.post(f"{API}/batches", headers=HEADERS, files={"file": fh}, timeout=120)
            r.raise_for_status()
            return r.json()["batchId"]


        def wait_manifest(batch_id: str) -> dict:
            for _ in range(60):
                r = requests.get(f"{API}/batches/{batch_id}/manifest", headers=HEADERS, timeout=30)
                if r.status_code == 200:
                    return r.json()
                time.sleep(30)
            raise TimeoutError(batch_id)


        if __name__ == "__main__":
            print(wait_manifest(upload(sys.argv[1])))
        """,
    ),
    T(
        "integrations/printmail-docuvia/pgp/docuvia-public.asc",
        "h13_pgp_pub",
        False,
        r"""
        Docuvia Ltd - file encryption key for inbound print jobs (verify fingerprint by phone)
        {V}
        """,
    ),
    T(
        "integrations/printmail-docuvia/sftp/filezilla-sitemanager.xml",
        "h13_b64_pw",
        True,
        r"""
        <?xml version="1.0" encoding="UTF-8"?>
        <FileZilla3 version="3.66.4" platform="windows">
            <Servers>
                <Server>
                    <Host>sftp.docuvia.co.uk</Host>
                    <Port>22</Port>
                    <Protocol>1</Protocol>
                    <Type>0</Type>
                    <User>calderic_renewals</User>
                    <Pass encoding="base64">{V}</Pass>
                    <Logontype>1</Logontype>
                    <Name>Docuvia print (prod)</Name>
                </Server>
                <Server>
                    <Host>sftp.harrowclaims.co.uk</Host>
                    <Port>2222</Port>
                    <Protocol>1</Protocol>
                    <User>calderic_fnol</User>
                    <Pass encoding="base64">{V2}</Pass>
                    <Logontype>1</Logontype>
                    <Name>Harrow TPA (prod)</Name>
                </Server>
            </Servers>
        </FileZilla3>
        """,
    ),
    T(
        "integrations/printmail-docuvia/sftp/winscp.ini.excerpt",
        "h13_enc_hex",
        False,
        r"""
        [Sessions\calderic_renewals@sftp.docuvia.co.uk]
        HostName=sftp.docuvia.co.uk
        UserName=calderic_renewals
        ; WinSCP stores the password obfuscated per master password (master password is set)
        PasswordPlain=
        Password={V}
        [Configuration\Security]
        UseMasterPassword=1
        MasterPasswordVerifier={V2}
        """,
    ),
]

# ====================================================================== docs, runbooks, chat exports (en, es, pl, it)
TEMPLATES += [
    T(
        "docs/runbooks/RB-112-broker-portal-outage.md",
        "h13_pw",
        True,
        r"""
        # RB-112 Broker portal outage

        **Severity:** P2 (P1 if renewals day). **Owner:** Broker Platform.

        ## 1. Check the basics

        1. `curl -I https://brokers.calderic.co.uk/health` should return 200.
        2. Log on to the jump box `jump01.cm.internal` with your own account.
        3. Check the PHP-FPM pods: `kubectl -n broker-portal get pods`.

        ## 2. Database

        If the portal logs show `SQLSTATE[HY000] [1045] Access denied`, the app password was
        probably rotated without a redeploy. The break-glass DBA login for the broker MySQL is
        `dba_breakglass` / `{V}` (mysql-broker-prd.cm.internal:3306). Use it only to check
        `SHOW PROCESSLIST;` and reset `broker_app`, then tell #sec-ops.

        ## 3. Escalation

        Call the on-call DBA via PagerDuty service "Broker MySQL".
        """,
    ),
    T(
        "docs/runbooks/RB-207-reimpresion-renovaciones.es.md",
        "h13_pw",
        True,
        r"""
        # RB-207 Reimpresión de las cartas de renovación

        Este procedimiento se usa cuando Docuvia (imprenta y correo) rechaza un lote.

        1. Conéctese a `batch-lnx02.cm.internal` con su usuario personal.
        2. Ejecute `sudo -iu batch01` y vaya a `/opt/printmail`.
        3. Vuelva a generar el lote: `./printmail_upload_v1.sh 20250318`.
        4. Si el script pide contraseña para `calderic_renewals`, la contraseña actual es `{V}`
           (cambiada el 3 de marzo; la anterior era `{V2}`).
        5. Confirme en el portal de Docuvia que el lote aparece como «Recibido».

        Si el problema continúa, abra una incidencia P3 al equipo de Batch.
        """,
    ),
    T(
        "docs/runbooks/RB-207-reimpresion-renovaciones.es.v2.md",
        "h13_placeholder",
        False,
        r"""
        # RB-207 Reimpresión de las cartas de renovación (v2)

        1. Conéctese a `batch-lnx02.cm.internal`.
        2. Obtenga la contraseña de `calderic_renewals` del Vault:
           `vault kv get -field=password secret/batch/printmail`.
        3. Ejecute `PM_PASS='{V}' ./printmail_upload_v1.sh 20250318`, sustituyendo `{V}`
           por el valor obtenido en el paso 2.
        4. Confirme en el portal de Docuvia que el lote aparece como «Recibido».
        """,
    ),
    T(
        "docs/runbooks/RB-310-awaria-sftp-tpa.pl.md",
        "h13_pw",
        True,
        r"""
        # RB-310 Awaria wysyłki FNOL do TPA (Harrow)

        Objawy: w katalogu `/data/outbound/fnol` rośnie liczba plików, alert „FNOL backlog > 50”.

        ## Kroki

        1. Zaloguj się na `batch-lnx02.cm.internal`.
        2. Sprawdź połączenie ręcznie:
           `sftp -P 2222 calderic_fnol@sftp.harrowclaims.co.uk`
           Hasło do konta (stan na luty 2025): `{V}`
        3. Jeśli logowanie nie działa, zadzwoń do wsparcia Harrow: +44 20 7946 0321.
        4. Po przywróceniu połączenia uruchom `./tpa_fnol_push.sh` ręcznie.

        Uwaga: hasło zmienia się co 90 dni — zaktualizuj tę stronę po zmianie.
        """,
    ),
    T(
        "docs/runbooks/RB-310-awaria-sftp-tpa.pl.v2.md",
        "h13_prose_neg",
        False,
        r"""
        # RB-310 Awaria wysyłki FNOL do TPA (Harrow) — wersja po audycie

        1. Zaloguj się na `batch-lnx02.cm.internal`.
        2. Hasło do konta `calderic_fnol`: {V}.
        3. Klucz API Harrow: {V2}.
        4. Po przywróceniu połączenia uruchom `./tpa_fnol_push.sh` ręcznie.
        """,
    ),
    T(
        "docs/runbooks/RB-415-telematica-ripristino.it.md",
        "h13_telematics_key",
        True,
        r"""
        # RB-415 Ripristino del flusso telematico (Tracklytix)

        Quando il punteggio di guida non arriva nel lakehouse entro le 06:00:

        1. Verificare lo stato del fornitore: https://status.tracklytix.io
        2. Provare una chiamata manuale dal jump box:

           ```bash
           curl -H "X-Api-Key: {V}" \
             "https://api.tracklytix.io/v2/fleets/CALDERIC-UK/scores?date=$(date -d yesterday +%F)"
           ```

        3. Se la risposta è 401, la chiave è stata ruotata dal fornitore: chiedere la nuova chiave
           al referente (Marco Bellini) e aggiornare il Key Vault `kv-cm-pricing`.
        4. Rilanciare il DAG `telematics_ingest` da Airflow.
        """,
    ),
    T(
        "docs/runbooks/RB-415-telematica-ripristino.it.v2.md",
        "h13_redacted",
        False,
        r"""
        # RB-415 Ripristino del flusso telematico (Tracklytix) — rev. 3

        2. Provare una chiamata manuale dal jump box:

           ```bash
           curl -H "X-Api-Key: {V}" "https://api.tracklytix.io/v2/fleets/CALDERIC-UK/scores"
           ```

           (chiave oscurata: recuperarla con `az keyvault secret show --vault-name kv-cm-pricing -n tracklytix-key`)
        3. Password del servizio SFTP di backup: {V2}
        """,
    ),
    T(
        "docs/handover/2025-01-claims-ops-handover.md",
        "h13_default_grafana",
        True,
        r"""
        # Claims ops handover - January 2025 (Tomasz -> Giulia)

        Things nobody writes down:

        - The old Grafana on `grafana-legacy.cm.internal:3000` still has the default login
          `admin` / `{V}`. It only shows the FNOL queue dashboards but it is reachable from the
          office VLAN. Ticket to decommission: OPS-2210.
        - RabbitMQ management on mq-claims-uat01 is `guest`-only from localhost, use the tunnel.
        - The TPA sends bordereaux late on bank holidays; don't page anyone for that.
        - SAS grid node sas-grid03 needs a reboot every ~40 days (memory leak in the ODBC driver).
        """,
    ),
    T(
        "docs/handover/2024-11-pricing-handover.md",
        "h13_databricks",
        True,
        r"""
        # Pricing platform handover (Alejandro leaving, Nov 2024)

        - Databricks workspace: adb-4417309255113271.11.azuredatabricks.net
        - The scheduled notebooks run as the service principal, except `flood_exposure`, which
          still uses my personal token: `{V}` - please swap to the SP before I'm offboarded,
          otherwise the job fails on 30 Nov.
        - Posit Connect: dashboards published by `pricing-bot`.
        - Snowflake warehouse PRICING_WH auto-suspends after 5 min.
        """,
    ),
    T(
        "docs/chat-exports/slack-ops-bridge-2025-02-11.json",
        "h13_pw",
        True,
        r"""
        [
          {"ts": "1739267401.002100", "user": "U04KX2P8M1A", "user_name": "tomasz.w", "text": "anyone know why the 02:00 bordereau didn't go to Harrow?"},
          {"ts": "1739267522.002300", "user": "U05B7Q3L0ZC", "user_name": "giulia.r", "text": "sftp login failing, they reset our password yesterday"},
          {"ts": "1739267610.002500", "user": "U04KX2P8M1A", "user_name": "tomasz.w", "text": "new one from Priya's email: {V}  - updating the batch box now"},
          {"ts": "1739267755.002700", "user": "U05B7Q3L0ZC", "user_name": "giulia.r", "text": "thx, please also put it in the vault and delete this msg :pray:"},
          {"ts": "1739268020.002900", "user": "U04KX2P8M1A", "user_name": "tomasz.w", "text": "done, job re-run OK"}
        ]
        """,
    ),
    T(
        "docs/chat-exports/teams-pricing-2024-10-02.txt",
        "h13_pw",
        True,
        r"""
        [02/10/2024 09:14] Alejandro García: morning! is the DW down?
        [02/10/2024 09:15] Zofia Nowak: not down, pricing_ro got locked after the password change
        [02/10/2024 09:16] Alejandro García: ah. what's the new one?
        [02/10/2024 09:17] Zofia Nowak: {V}
        [02/10/2024 09:17] Zofia Nowak: (I'll rotate it again once the SAS autoexec is fixed)
        [02/10/2024 09:20] Alejandro García: works, gracias
        """,
    ),
    T(
        "docs/chat-exports/teams-pricing-2024-10-09.txt",
        "h13_i18n",
        False,
        r"""
        [09/10/2024 11:02] Zofia Nowak: the new SAS login page shows "{V}" after a failed attempt
        [09/10/2024 11:03] Alessandro Conti: and the reset screen says "{V2}", looks right
        [09/10/2024 11:05] Alejandro García: the expiry banner: "{V3}" 👍 translations are in the portal repo
        """,
    ),
    T(
        "docs/chat-exports/slack-mobile-2025-03-04.json",
        "h13_slack_bot",
        True,
        r"""
        [
          {"ts": "1741078801.000100", "user_name": "ola.k", "text": "the release bot stopped posting to #mobile-releases"},
          {"ts": "1741078890.000200", "user_name": "dev.patel", "text": "I regenerated it, bot token is {V} - can you update the GH secret? I don't have admin"},
          {"ts": "1741079001.000300", "user_name": "ola.k", "text": "updated SLACK_BOT_TOKEN, thanks"}
        ]
        """,
    ),
    T(
        "docs/incidents/PIR-2025-007-exposed-key.md",
        "h13_redacted",
        False,
        r"""
        # PIR-2025-007: Storage account key committed to mobile-ios

        **Date:** 2025-03-12  **Severity:** P2  **Status:** closed

        ## Summary

        A shared key for `stcmclaimsprod` was committed to `mobile-ios` in
        `ClaimPhotoUploader.swift` (`accountKey = "{V}"`). The key was rotated within
        40 minutes of detection. No evidence of misuse in the storage logs.

        ## Actions

        - Rotate key1 and key2 (done; new value: {V2}).
        - Move the upload to user-delegation SAS issued by the claims API (MOB-501).
        - Add pre-commit secret scanning to all mobile repos.
        """,
    ),
    T(
        "docs/incidents/PIR-2024-019-tpa-creds-in-ticket.md",
        "h13_pw",
        True,
        r"""
        # PIR-2024-019: TPA SFTP credentials pasted into a ServiceNow ticket

        On 2024-08-21 a handler pasted the following into INC0088412 while asking for help:

        > sftp calderic_fnol@sftp.harrowclaims.co.uk, pwd {V}, getting "permission denied"

        The ticket was visible to ~300 service desk users. The password was **not** rotated until
        2024-09-03 (13 days), which is the main finding of this review.
        """,
    ),
    T(
        "docs/security/password-policy.md",
        "h13_number",
        False,
        r"""
        # Calderic password and secret standard (SEC-STD-04)

        - Human accounts: minimum length {V} characters, no expiry unless compromised.
        - Service accounts: minimum {V2} random characters, rotated every {V3} days or on staff exit.
        - Secrets must live in Key Vault / HashiCorp Vault / CyberArk. Never in Git, tickets or chat.
        - Example of a *bad* secret in config: `password: ${DB_PASSWORD:-changeme}`.
        """,
    ),
    T(
        "docs/security/password-policy.es.md",
        "h13_i18n_es",
        False,
        r"""
        # Política de contraseñas (SEC-STD-04) — traducción

        Mensajes que verá el usuario en el portal de mediadores:

        - «{V}»
        - «{V2}»
        - «{V3}»

        Las contraseñas de servicio se guardan en Key Vault; nunca en Git.
        """,
    ),
    T(
        "docs/dev/local-setup.md",
        "h13_doc_url",
        False,
        r"""
        # Local setup for new developers

        The examples below use documentation hosts; replace them with your local containers.

        ```bash
        export DATABASE_URL='{V}'
        export CLAIMS_DB='{V2}'
        docker compose up -d
        ```

        Ask in #dev-onboarding for access to the dev Vault.
        """,
    ),
    T(
        "docs/dev/api-auth.md",
        "h13_example_jwt",
        False,
        r"""
        # Calling internal APIs

        Every internal API accepts a bearer JWT issued by `auth.calderic.co.uk`. The sample below is
        the well-known example from the RFC / jwt.io / AWS docs, not a Calderic credential:

        ```http
        GET /api/v3/policies/CM-MOT-2024-0031877 HTTP/1.1
        Host: pas.cm.internal
        Authorization: Bearer {V}
        ```

        Get a real token with `cm-auth login --audience pas`.
        """,
    ),
    T(
        "docs/dev/aws-sandbox.md",
        "h13_aws_example_pair",
        False,
        r"""
        # Pricing AWS sandbox

        Configure a profile with SSO (`aws configure sso`); static keys are not allowed.
        If a tool insists on keys, the AWS documentation values work for dry runs:

        ```ini
        [profile pricing-dryrun]
        {V}
        ```
        """,
    ),
    T(
        "docs/dev/curl-cheatsheet.md",
        "h13_basic_b64",
        True,
        r"""
        # Handy curl commands (claims UAT)

        Legacy rating engine (basic auth):

        ```bash
        curl -s -H "Authorization: Basic {V}" \
             -H "Content-Type: application/xml" \
             --data @sample-motor-request.xml \
             http://rating-legacy-uat.cm.internal:7001/rate
        ```

        Claims API health: `curl -s https://claims-api-uat.cm.internal/health`
        """,
    ),
    T(
        "docs/dev/curl-cheatsheet-prod.md",
        "h13_jwt",
        True,
        r"""
        # Claims API - production smoke tests

        Long-lived smoke-test token (service `smoke-tester`, valid for a year, ask before rotating):

        ```bash
        TOKEN='{V}'
        curl -s -H "Authorization: Bearer $TOKEN" https://claims-api.calderic.co.uk/api/claims/ping
        ```
        """,
    ),
    T(
        "docs/vendors/contacts.csv",
        "h13_weak_pw",
        True,
        r"""
        vendor,service,contact,portal_url,portal_user,portal_password,notes
        Harrow Claims Solutions,TPA,priya.raman@harrowclaims.co.uk,https://portal.harrowclaims.co.uk,calderic.ops,{V},shared ops login
        Tracklytix,Telematics,support@tracklytix.io,https://console.tracklytix.io,ops@calderic.co.uk,{V2},MFA on Giulia's phone
        Docuvia,Print & mail,clientservices@docuvia.co.uk,https://my.docuvia.co.uk,calderic-print,{V3},
        """,
    ),
    T(
        "docs/vendors/contacts-v2.csv",
        "h13_prose_neg",
        False,
        r"""
        vendor,service,contact,portal_url,portal_user,portal_password,notes
        Harrow Claims Solutions,TPA,priya.raman@harrowclaims.co.uk,https://portal.harrowclaims.co.uk,calderic.ops,{V},
        Tracklytix,Telematics,support@tracklytix.io,https://console.tracklytix.io,ops@calderic.co.uk,{V2},
        """,
    ),
    T(
        "docs/architecture/claims-integration.html",
        "h13_pw",
        True,
        r"""
        <!DOCTYPE html>
        <html lang="en">
        <head><meta charset="utf-8"><title>Claims integration - architecture notes</title></head>
        <body>
          <h1>Claims integration</h1>
          <p>FNOL flows from the mobile app and the call centre into the claims platform, then to the
             TPA (Harrow) by REST for motor and by SFTP for home and pet.</p>
          <h2>Test environment</h2>
          <ul>
            <li>Claims UAT: <code>https://claims-api-uat.cm.internal</code></li>
            <li>Handler test login: <code>uat.handler01</code> / <code>{V}</code></li>
          </ul>
          <!-- TODO: remove the login above before publishing to Confluence -->
        </body>
        </html>
        """,
    ),
]

# ====================================================================== assorted: cloud keys, CLI arguments, tooling config
TEMPLATES += [
    T(
        "pricing-models/gcp/sa-pricing-bq.json",
        "h13_gcp_sa_key",
        True,
        r"""
        {
          "type": "service_account",
          "project_id": "cm-pricing-analytics",
          "private_key_id": "5f0c9e2b7a1d4c3e8b6a2f1e0d9c8b7a6f5e4d3c",
          "private_key": "{V}",
          "client_email": "bq-pricing-reader@cm-pricing-analytics.iam.gserviceaccount.com",
          "client_id": "104583920174655302817",
          "auth_uri": "https://accounts.google.com/o/oauth2/auth",
          "token_uri": "https://oauth2.googleapis.com/token",
          "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
          "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/bq-pricing-reader%40cm-pricing-analytics.iam.gserviceaccount.com",
          "universe_domain": "googleapis.com"
        }
        """,
    ),
    T(
        "ops-scripts/linux/.aws/credentials",
        "h13_aws_id_pair",
        True,
        r"""
        [default]
        region = eu-west-2

        [pricing-sandbox]
        {V}

        [telematics-archive]
        {V2}
        """,
    ),
    T(
        "ops-scripts/linux/.aws/config",
        "h13_aws_account",
        False,
        r"""
        [profile pricing-sandbox]
        sso_session = calderic
        sso_account_id = {V}
        sso_role_name = PricingDataScientist
        region = eu-west-2

        [profile telematics-archive]
        role_arn = arn:aws:iam::{V2}:role/TelematicsArchiveReader
        source_profile = pricing-sandbox

        [sso-session calderic]
        sso_start_url = https://calderic.awsapps.com/start
        sso_region = eu-west-2
        """,
    ),
    T(
        "pricing-models/.env",
        "h13_aws_env_pair",
        True,
        r"""
        # local overrides for the pricing notebooks (python-dotenv)
        SNOWFLAKE_ACCOUNT=calderic-eu_west_2
        SNOWFLAKE_USER=SVC_PRICING
        {V}
        AWS_DEFAULT_REGION=eu-west-2
        SCRATCH_BUCKET=cm-pricing-scratch-euw2
        """,
    ),
    T(
        "infra/aws/pricing-lambda/environment.json",
        "h13_kms_blob",
        False,
        r"""
        {
          "FunctionName": "pricing-quote-scorer",
          "Environment": {
            "Variables": {
              "SNOWFLAKE_USER": "SVC_PRICING_LAMBDA",
              "SNOWFLAKE_PASSWORD_ENC": "{V}",
              "TELEMATICS_API_KEY_ENC": "{V2}",
              "KMS_KEY_ALIAS": "alias/cm-pricing-lambda"
            }
          },
          "KMSKeyArn": "arn:aws:kms:eu-west-2:511836204977:key/7a3d2c1b-0e9f-4a8b-9c7d-6e5f4a3b2c1d"
        }
        """,
    ),
    T(
        "ops-scripts/okta/deprovision_leaver.py",
        "h13_okta",
        True,
        r"""
        '''Deactivates a leaver in Okta and removes them from claims/pricing groups (HR feed job).'''

        import sys

        import requests

        OKTA = "https://calderic.okta-emea.com"
        HEADERS = {
            "Authorization": "SSWS {V}",
            "Accept": "application/json",
        }


        def deactivate(login: str) -> None:
            r = requests.get(f"{OKTA}/api/v1/users/{login}", headers=HEADERS, timeout=20)
            r.raise_for_status()
            user_id = r.json()["id"]
            requests.post(f"{OKTA}/api/v1/users/{user_id}/lifecycle/deactivate", headers=HEADERS, timeout=20).raise_for_status()


        if __name__ == "__main__":
            deactivate(sys.argv[1])
        """,
    ),
    T(
        "ops-scripts/okta/apps.yaml",
        "h13_okta_client_id",
        False,
        r"""
        # OIDC apps registered in Okta (client ids are public; secrets are in Vault)
        apps:
          - name: broker-portal
            client_id: {V}
            redirect_uris: [https://brokers.calderic.co.uk/oidc/callback]
          - name: claims-handler-ui
            client_id: {V2}
            redirect_uris: [https://claims.cm.internal/signin-oidc]
          - name: pricing-connect
            client_id: {V3}
        """,
    ),
    T(
        "mobile-backend/src/integrations/stripe.ts",
        "h13_stripe",
        True,
        r"""
        import Stripe from "stripe";

        // Travel insurance: card payments for single-trip policies bought in the app.
        export const stripe = new Stripe(process.env.STRIPE_SECRET_KEY ?? "{V}", {
          apiVersion: "2024-06-20",
          appInfo: { name: "calderic-mobile-backend" },
        });

        export async function createTripPayment(amountPence: number, policyRef: string) {
          return stripe.paymentIntents.create({
            amount: amountPence,
            currency: "gbp",
            metadata: { policyRef },
          });
        }
        """,
    ),
    T(
        "mobile-backend/src/integrations/stripe.client.ts",
        "h13_stripe_pk",
        False,
        r"""
        // Publishable keys are meant to be shipped to clients (see Stripe docs: "publishable key").
        export const STRIPE_PUBLISHABLE_KEY = {
          travel: "{V}",
          pet: "{V2}",
        };
        """,
    ),
    T(
        "ops-scripts/monitoring/datadog-agent.yaml",
        "h13_datadog_key",
        True,
        r"""
        ## datadog.yaml for the batch and SAS hosts (deployed by Ansible role cm_datadog)
        api_key: {V}
        site: datadoghq.eu
        hostname_fqdn: true
        tags:
          - team:batch
          - env:prod
        logs_enabled: true
        process_config:
          process_collection:
            enabled: true
        """,
    ),
    T(
        "ops-scripts/monitoring/newrelic-infra.yml",
        "h13_newrelic",
        True,
        r"""
        # New Relic infra agent on the legacy PAS reporting servers (pre-Datadog)
        # license_key is read from NRIA_LICENSE_KEY (set by the Ansible role from Vault)
        display_name: pas-rpt-prd02
        custom_attributes:
          team: policy-admin
        # user key used by the dashboard export cron
        # api_key: {V}
        """,
    ),
    T(
        "ops-scripts/vault/agent-batch.hcl",
        "h13_vault_token",
        True,
        r"""
        # Vault agent on batch-lnx02. Token auth as a stopgap until AppRole is approved (SEC-301).
        vault {
          address = "https://vault.cm.internal:8200"
        }

        auto_auth {
          method "token_file" {
            config = {
              token_file_path = "/etc/vault-agent/token"
            }
          }
        }

        # bootstrap token written to token_file by hand on 2025-01-09:
        #   {V}

        template {
          source      = "/etc/vault-agent/tpa.ctmpl"
          destination = "/etc/calderic/tpa_sftp.pass"
        }
        """,
    ),
    T(
        "ops-scripts/vault/policies/batch.hcl",
        "h13_vault_path",
        False,
        r"""
        # read-only access for the batch host
        path "{V}" {
          capabilities = ["read"]
        }

        path "{V2}" {
          capabilities = ["read", "list"]
        }
        """,
    ),
    T(
        "infra/azure-devops/claims-legacy-pipeline.yml",
        "h13_ado_pat",
        True,
        r"""
        # Azure DevOps pipeline for the WebForms claims UI (legacy, still on ADO)
        trigger:
          branches:
            include: [main]
        pool:
          vmImage: windows-2022
        variables:
          - group: claims-legacy-secrets
        steps:
          - script: git clone https://build:{V}@dev.azure.com/calderic/ClaimsLegacy/_git/SharedControls shared
            displayName: Fetch shared controls
          - task: VSBuild@1
            inputs:
              solution: ClaimsWeb.sln
              configuration: Release
        """,
    ),
    T(
        "infra/azure-devops/claims-legacy-release.yml",
        "h13_ref_dotnet_cfg",
        False,
        r"""
        variables:
          - group: claims-legacy-secrets
        steps:
          - task: FileTransform@1
            inputs:
              folderPath: $(Pipeline.Workspace)/drop
              fileType: xml
          - powershell: |
              $cs = "Server=sql-claims-prd01;Database=ClaimsLegacy;User Id=claims_web;Password={V}"
              Write-Host "##vso[task.setvariable variable=ConnStr;issecret=true]$cs"
        """,
    ),
    T(
        "ops-scripts/linux/.git-credentials",
        "h13_gitlab",
        True,
        r"""
        https://oauth2:{V}@gitlab.cm.internal
        https://svc-ops-tools:{V2}@gitlab.harrowclaims.co.uk
        """,
    ),
    T(
        "pricing-models/docker/rstudio/Dockerfile",
        "h13_pw",
        True,
        r"""
        FROM rocker/verse:4.4.1

        # RStudio Server for the pricing team's shared box (rstudio-pricing.cm.internal)
        ENV PASSWORD={V}
        ENV ROOT=TRUE
        RUN install2.r --error --skipinstalled odbc DBI dplyr glmnet mgcv rsconnect keyring
        COPY odbcinst.ini /etc/odbcinst.ini
        EXPOSE 8787
        """,
    ),
    T(
        "pricing-models/docker/rstudio/docker-compose.yml",
        "h13_ref_sh",
        False,
        r"""
        services:
          rstudio:
            image: acrcmprod.azurecr.io/pricing/rstudio:4.4.1
            environment:
              PASSWORD: "{V}"
              PRICING_DB_PWD: "{V2}"
            ports:
              - "8787:8787"
            volumes:
              - pricing-home:/home/rstudio
        volumes:
          pricing-home: {}
        """,
    ),
    T(
        "pricing-models/sas/.authinfo",
        "h13_pw",
        True,
        r"""
        default user pricing_ro password "{V}"
        host sql-claims-dw.cm.internal user sas_etl password "{V2}"
        """,
    ),
    T(
        "pricing-models/odbc/odbc.ini",
        "h13_pw",
        True,
        r"""
        [ClaimsDW]
        Driver = ODBC Driver 18 for SQL Server
        Server = sql-claims-dw.cm.internal
        Database = ClaimsDW
        UID = pricing_ro
        PWD = {V}
        TrustServerCertificate = yes

        [PasReplica]
        Driver = Oracle 19 ODBC driver
        ServerName = PASREP
        UserID = PRICING_RO
        Password = {V2}
        """,
    ),
    T(
        "pricing-models/.Rprofile",
        "h13_posit_key",
        True,
        r"""
        local({
          options(repos = c(CRAN = "https://packagemanager.cm.internal/cran/latest"))
          options(connectServer = "https://connect.cm.internal")
          # Connect API key for publishing (personal key of the pricing lead)
          Sys.setenv(CONNECT_API_KEY = "{V}")
        })
        """,
    ),
    T(
        "pricing-models/renv.lock",
        "h13_md5",
        False,
        r"""
        {
          "R": {
            "Version": "4.4.1",
            "Repositories": [{"Name": "CRAN", "URL": "https://packagemanager.cm.internal/cran/latest"}]
          },
          "Packages": {
            "DBI": {"Package": "DBI", "Version": "1.2.3", "Source": "Repository", "Hash": "{V}"},
            "glmnet": {"Package": "glmnet", "Version": "4.1-8", "Source": "Repository", "Hash": "{V2}"},
            "odbc": {"Package": "odbc", "Version": "1.5.0", "Source": "Repository", "Hash": "{V3}"}
          }
        }
        """,
    ),
    T(
        "mobile-android/local.properties",
        "h13_google_key",
        True,
        r"""
        ## This file must *NOT* be checked into Version Control Systems,
        # as it contains information specific to your local configuration.
        sdk.dir=/Users/ola.k/Library/Android/sdk
        MAPS_API_KEY={V}
        """,
    ),
    T(
        "mobile-android/app/src/main/java/uk/co/calderic/mobile/di/NetworkModule.kt",
        "h13_api_key",
        True,
        r"""
        package uk.co.calderic.mobile.di

        import dagger.Module
        import dagger.Provides
        import dagger.hilt.InstallIn
        import dagger.hilt.components.SingletonComponent
        import okhttp3.OkHttpClient

        @Module
        @InstallIn(SingletonComponent::class)
        object NetworkModule {
            // gateway key for the quote API (APIM subscription key, product "mobile-quotes")
            private const val APIM_SUBSCRIPTION_KEY = "{V}"

            @Provides
            fun okHttp(): OkHttpClient = OkHttpClient.Builder()
                .addInterceptor { chain ->
                    chain.proceed(
                        chain.request().newBuilder()
                            .header("Ocp-Apim-Subscription-Key", APIM_SUBSCRIPTION_KEY)
                            .build(),
                    )
                }
                .build()
        }
        """,
    ),
    T(
        "mobile-ios/CaldericTests/AuthServiceTests.swift",
        "h13_fake",
        False,
        r"""
        import XCTest
        @testable import Calderic

        final class AuthServiceTests: XCTestCase {
            func testRefreshUsesStoredToken() async throws {
                let store = InMemoryKeychain()
                store.set("{V}", for: .refreshToken)
                let service = AuthService(keychain: store, http: MockHTTP(status: 200))
                let session = try await service.refresh()
                XCTAssertEqual(session.accessToken, "{V2}")
            }
        }
        """,
    ),
    T(
        "mobile-ios/Calderic/GoogleService-Info.plist",
        "h13_google_client_id",
        False,
        r"""
        <?xml version="1.0" encoding="UTF-8"?>
        <!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
        <plist version="1.0">
        <dict>
            <key>CLIENT_ID</key>
            <string>{V}</string>
            <key>GCM_SENDER_ID</key>
            <string>418203557719</string>
            <key>BUNDLE_ID</key>
            <string>uk.co.calderic.mobile</string>
            <key>PROJECT_ID</key>
            <string>calderic-mobile-prod</string>
        </dict>
        </plist>
        """,
    ),
    T(
        "ops-scripts/linux/db_maintenance.sh",
        "h13_pw",
        True,
        r"""
        #!/bin/bash
        # Weekly maintenance on the broker MySQL and the mobile Postgres (cron on ops01, Sunday 03:00)
        set -e
        mysqlcheck -h mysql-broker-prd.cm.internal -u maint -p'{V}' --optimize broker_portal
        PGPASSWORD='{V2}' vacuumdb -h pg-mobile-prd.cm.internal -U maint --all --analyze-in-stages
        sqlcmd -S sql-claims-prd01.cm.internal -U maint -P '{V3}' -Q "EXEC dbo.IndexOptimize @Databases='Claims'"
        """,
    ),
    T(
        "ops-scripts/linux/crontab.ops01",
        "h13_url_pw",
        True,
        r"""
        # m h dom mon dow command
        15 2 * * * /usr/bin/mysqldump -h mysql-legacy01.cm.internal -u backup -p{V} --single-transaction commissions | gzip > /backup/commissions_$(date +\%F).sql.gz
        30 2 * * * /usr/bin/pg_dump "postgresql://backup:{V2}@pg-mobile-prd.cm.internal:5432/mobile" | gzip > /backup/mobile_$(date +\%F).sql.gz
        0 6 * * 1 /opt/ops/bin/weekly_report.sh >/dev/null 2>&1
        """,
    ),
    T(
        "ops-scripts/k8s/create-secrets.sh",
        "h13_pw",
        True,
        r"""
        #!/usr/bin/env bash
        # One-off: recreate secrets in the new AKS cluster (aks-cm-claims-prd-02)
        kubectl -n claims create secret generic claims-db-credentials \
          --from-literal=username=claims_app \
          --from-literal=password='{V}' --dry-run=client -o yaml | kubectl apply -f -
        kubectl -n broker-portal create secret docker-registry regcred \
          --docker-server=acrcmprod.azurecr.io --docker-username=acrcmprod \
          --docker-password='{V2}'
        """,
    ),
    T(
        "ops-scripts/k8s/create-secrets-v2.sh",
        "h13_ref_sh",
        False,
        r"""
        #!/usr/bin/env bash
        set -euo pipefail
        kubectl -n claims create secret generic claims-db-credentials \
          --from-literal=username=claims_app \
          --from-literal=password={V} --dry-run=client -o yaml | kubectl apply -f -
        echo {V2} | docker login acrcmprod.azurecr.io -u acrcmprod --password-stdin
        """,
    ),
    T(
        "policy-admin/scripts/make-keystore.sh",
        "h13_pw",
        True,
        r"""
        #!/bin/bash
        # Builds the PAS PKCS12 keystore from the cert issued by the internal CA
        openssl pkcs12 -export -in pas-prod.crt -inkey pas-prod.key \
          -name pas-prod -out pas-prod.p12 -passout pass:{V}
        keytool -importkeystore -srckeystore pas-prod.p12 -srcstoretype PKCS12 \
          -srcstorepass {V} -destkeystore pas-prod.jks -deststorepass {V2}
        """,
    ),
    T(
        "policy-admin/scripts/make-keystore-v2.sh",
        "h13_ref_sh",
        False,
        r"""
        #!/bin/bash
        set -euo pipefail
        STOREPASS={V}
        export STOREPASS
        openssl pkcs12 -export -in pas-prod.crt -inkey pas-prod.key -name pas-prod \
          -out pas-prod.p12 -passout env:STOREPASS
        keytool -importkeystore -srckeystore pas-prod.p12 -srcstoretype PKCS12 \
          -srcstorepass:env STOREPASS -destkeystore pas-prod.jks -deststorepass:env STOREPASS
        """,
    ),
    T(
        "broker-portal/config/saml/sp-key.pem",
        "h13_pkcs8_pem",
        True,
        r"""
        {V}
        """,
    ),
    T(
        "broker-portal/config/saml/idp-metadata.xml",
        "h13_cert_b64",
        False,
        r"""
        <?xml version="1.0" encoding="UTF-8"?>
        <md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="http://www.okta.com/exk9a7b6c5d4e3f2a1">
          <md:IDPSSODescriptor WantAuthnRequestsSigned="false" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
            <md:KeyDescriptor use="signing">
              <ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#">
                <ds:X509Data>
                  <ds:X509Certificate>{V}</ds:X509Certificate>
                </ds:X509Data>
              </ds:KeyInfo>
            </md:KeyDescriptor>
            <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://calderic.okta-emea.com/app/calderic_brokerportal_1/exk9a7b6c5d4e3f2a1/sso/saml"/>
          </md:IDPSSODescriptor>
        </md:EntityDescriptor>
        """,
    ),
    T(
        "policy-admin/pas-core/src/main/resources/logback-spring.xml",
        "h13_pw",
        True,
        r"""
        <configuration>
          <include resource="org/springframework/boot/logging/logback/defaults.xml"/>
          <appender name="MAIL" class="ch.qos.logback.classic.net.SMTPAppender">
            <smtpHost>smtp.cm.internal</smtpHost>
            <smtpPort>587</smtpPort>
            <STARTTLS>true</STARTTLS>
            <username>pas-alerts</username>
            <password>{V}</password>
            <to>pas-oncall@calderic.co.uk</to>
            <from>pas-alerts@calderic.co.uk</from>
            <subject>PAS ERROR: %logger{20} - %m</subject>
          </appender>
          <root level="INFO">
            <appender-ref ref="MAIL"/>
          </root>
        </configuration>
        """,
    ),
    T(
        "policy-admin/pas-core/src/main/resources/bootstrap.yml",
        "h13_pw",
        True,
        r"""
        spring:
          datasource:
            url: ${PAS_DB_URL:jdbc:oracle:thin:@//ora-pas-dev01.cm.internal:1521/PASDEV}
            username: ${PAS_DB_USER:PAS_APP}
            password: ${PAS_DB_PASSWORD:{V}}
          rabbitmq:
            host: mq-pas-dev01.cm.internal
            username: pas
            password: ${PAS_MQ_PASSWORD:{V2}}
        """,
    ),
    T(
        "policy-admin/pas-core/src/main/resources/bootstrap-ci.yml",
        "h13_ref_java",
        False,
        r"""
        spring:
          datasource:
            url: ${PAS_DB_URL}
            username: ${PAS_DB_USER:PAS_APP}
            password: {V}
          rabbitmq:
            password: {V2}
        """,
    ),
    T(
        "claims-platform/src/Calderic.Claims.Ivr/App.config",
        "h13_pw",
        True,
        r"""
        <?xml version="1.0" encoding="utf-8"?>
        <!-- IVR callback console app (call centre). Runs as a scheduled task on ivr-app01. -->
        <configuration>
          <connectionStrings>
            <add name="IvrDb" connectionString="Data Source=sql-ivr-prd01.cm.internal;Initial Catalog=IVR;User ID=ivr_app;Password={V}" providerName="System.Data.SqlClient" />
          </connectionStrings>
          <system.net>
            <mailSettings>
              <smtp from="ivr-callbacks@calderic.co.uk">
                <network host="smtp.cm.internal" port="587" userName="ivr-callbacks" password="{V2}" enableSsl="true" />
              </smtp>
            </mailSettings>
          </system.net>
        </configuration>
        """,
    ),
    T(
        "claims-platform/src/Calderic.Claims.Api/appsettings.AzureAd.json",
        "h13_uuid",
        False,
        r"""
        {
          "AzureAd": {
            "Instance": "https://login.microsoftonline.com/",
            "TenantId": "{V}",
            "ClientId": "{V2}",
            "Audience": "api://{V2}",
            "ClientCertificates": []
          }
        }
        """,
    ),
]
