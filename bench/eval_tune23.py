"""Blind part ``tune23``: the City of Ardenholt (Gemeente/Stadt/Miasto Ardenholt), a fictional
mid-size municipality, its IT department (ICT-beheer) and its suppliers. Files are the citizen
portal (Drupal settings and modules, WordPress for the tourism site, PHP glue), the permits and
municipal tax systems (Java EE on WebLogic and JBoss/WildFly, Oracle schemas and sqlplus batches,
.NET on IIS with web.config transforms, classic ASP leftovers with global.asa), GIS (ArcGIS
Enterprise and API keys, GeoServer data directories, QGIS plugins in Python, PostGIS and
pg_service files), library and school systems (Koha in Perl, Moodle config and web service
clients), traffic and utility SCADA (Node-RED flows and settings, Mosquitto/MQTT bridges, Modbus
gateways, Windows service configs), public Wi-Fi and network gear (Cisco IOS configs, FortiGate
CLI backups, FreeRADIUS clients, SNMP, UniFi controller exports), identity (Active Directory and
LDAP binds, ADFS, Azure AD app registrations), infrastructure (VMware/PowerCLI, Hyper-V,
Ansible, PowerShell DSC, Terraform on Azure), open data (CKAN ini and API clients), CI (Jenkins,
Azure DevOps pipelines), and the paperwork around them: runbooks, council meeting IT notes,
vendor handovers, helpdesk tickets and Teams chat exports in English, Dutch, German and Polish.

Written blind, to be tuned on: the author saw only ``evalset.py`` and the head of
``eval_heldout11.py``, never the scanner, its rules, its output or other parts' templates.

Credentials (positive) include strong and weak passwords, vendor defaults on real hosts
(``ubnt``, ``cisco``, ``geoserver``, FreeRADIUS ``testing123``, SNMP ``public``), shared secrets
(RADIUS, TACACS, WPA2 PSKs, SNMPv3 passphrases), Cisco type 7 strings (reversible, so they count),
Azure AD client secrets, storage keys, SAS tokens, Azure DevOps and Jenkins tokens, GitHub tokens
with valid checksums, Teams webhooks, reCAPTCHA secret keys, ArcGIS and Mapbox secret tokens, CKAN
API keys (legacy UUID and JWT), Moodle web service tokens, ASP.NET machine keys, Drupal and
WordPress salts, Twilio auth tokens, and unencrypted private keys built from real key material
(RSA, EC, Ed25519, OpenSSH) with deterministic, seeded generation.

Look-alikes (negative) sit in the same kinds of files under the same key names: references to
environment variables, Key Vault, Azure DevOps and Jenkins secrets, Ansible Vault and Terraform
values; placeholders and redactions in four languages; password hashes (bcrypt, phpass, Drupal 7,
md5crypt, Cisco type 5/8/9, ``{SSHA}``, GeoServer ``digest1:``, Mosquitto ``$7$``); values
encrypted at rest (FortiGate ``ENC``, WebLogic ``{AES256}``, Jenkins ``{AQAAAB...}``, DPAPI
secure strings, Node-RED credential blobs, Ansible Vault, SOPS); public material (certificates,
public keys, SSH host keys and fingerprints, reCAPTCHA site keys, thumbprints); ids shaped like
secrets (tenant, subscription and client ids, ArcGIS item ids, Twilio account SIDs, commit hashes,
image digests, QGIS authcfg ids, case numbers); UI and i18n text about passwords; documented
example credentials (Azurite's development key, Google's reCAPTCHA test keys, hosts under
``example.com`` and ``.test``) and test values that say they are fake.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import string
import struct
import uuid
import zlib
from urllib.parse import quote

import evalset
from cryptography import x509
from cryptography.hazmat.primitives import serialization
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
CRYPT64 = "./" + ALNUM
PW_SYMBOLS = "!#%*-_=+.@$"
CISCO7_XLAT = "dsfd;kfoA,.iyewrkldJKDHSUBsgvca69834ncxv9873254k;fg87"
SMALL_PRIMES = [p for p in range(3, 2000) if all(p % d for d in range(2, int(p**0.5) + 1))]


def _sshstr(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


class Tune23Values(evalset.Values):
    """Value generators of the tune23 part; every slot generator's name starts with ``t23_``."""

    def __init__(self, seed: int, flavour: str) -> None:
        super().__init__(seed, flavour)
        self.words = [
            "belfort",
            "lindenhof",
            "waterpoort",
            "marktplein",
            "molenweg",
            "gracht",
            "rathaus",
            "brunnen",
            "ratusz",
            "rynek",
            "wiatrak",
            "heide",
            "schepen",
            "kade",
            "zwaluw",
            "kastanje",
        ]
        self.users = [
            "svc_permits",
            "svc_gis",
            "koha_admin",
            "moodle",
            "ckan_etl",
            "jenkins",
            "nodered",
            "svc_adfs",
            "ldapbind",
            "weblogic",
            "sa_belasting",
            "backup",
        ]

    # ------------------------------------------------------------------ helpers (not slots)
    def _b64(self, n: int, urlsafe: bool = False, pad: bool = True) -> str:
        raw = self.rng.randbytes(n)
        text = (base64.urlsafe_b64encode(raw) if urlsafe else base64.b64encode(raw)).decode()
        return text if pad else text.rstrip("=")

    def _armor(self, label: str, der: bytes, width: int = 64) -> str:
        body = base64.b64encode(der).decode()
        rows = [body[i : i + width] for i in range(0, len(body), width)]
        return f"-----BEGIN {label}-----\n" + "\n".join(rows) + f"\n-----END {label}-----"

    def _is_probable_prime(self, n: int) -> bool:
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

    def _prime(self, bits: int) -> int:
        while True:
            cand = self.rng.getrandbits(bits) | (3 << (bits - 2)) | 1
            if cand % 65537 != 1 and self._is_probable_prime(cand):
                return cand

    def _rsa(self, bits: int = 2048) -> rsa.RSAPrivateKey:
        e = 65537
        while True:
            p, q = self._prime(bits // 2), self._prime(bits // 2)
            if p != q:
                break
        n = p * q
        d = pow(e, -1, (p - 1) * (q - 1))
        numbers = rsa.RSAPrivateNumbers(
            p, q, d, d % (p - 1), d % (q - 1), pow(q, -1, p), rsa.RSAPublicNumbers(e, n)
        )
        return numbers.private_key()

    def _ed25519(self) -> ed25519.Ed25519PrivateKey:
        return ed25519.Ed25519PrivateKey.from_private_bytes(self.rng.randbytes(32))

    def _pw_core(self) -> str:
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
            return "Ah" + self.s(11, ALNUM) + self.pick(list("!#%"))
        if shape == 4:
            return self.s(18, ALNUM)
        leet = word.replace("a", "@").replace("o", "0").replace("e", "3")
        return leet[0].upper() + leet[1:] + "#" + self.s(4, DIGITS)

    # ------------------------------------------------------------------ positives: passwords
    def t23_pw(self) -> str:
        return self._pw_core()

    def t23_weak_pw(self) -> str:
        shape = self.rng.randrange(4)
        if shape == 0:
            return self.pick(
                [
                    "Welkom01",
                    "Welkom123!",
                    "Gemeente2023",
                    "P@ssw0rd",
                    "admin123",
                    "Password1",
                    "letmein",
                    "Haslo123",
                    "Qwerty123",
                    "stadhuis1",
                    "Passwort1",
                ]
            )
        if shape == 1:
            return "Ardenholt" + str(self.rng.randrange(2016, 2027)) + self.pick(["", "!", "#"])
        if shape == 2:
            return self.pick(self.words) + self.pick(["1", "123", "2024", "!", ""])
        return self.pick(["Zomer", "Winter", "Sommer", "Lato", "Wiosna", "Herfst"]) + str(
            self.rng.randrange(2019, 2027)
        )

    def t23_default_pw(self) -> str:
        """Vendor defaults, planted only on real (non-documentation) hosts."""
        return self.pick(["admin", "guest", "ubnt", "cisco", "password", "1234", "admin1234"])

    def t23_ap_default_pw(self) -> str:
        """Factory SSH passwords of access points awaiting adoption."""
        return self.pick(["ubnt", "ubnt", "admin"])

    def t23_app_default_pw(self) -> str:
        return self.pick(["geoserver", "tomcat", "s3cret", "welcome1", "weblogic1", "manager"])

    def t23_url_pw(self) -> str:
        if self.rng.randrange(2):
            return self.pick(self.words).capitalize() + self.s(4, DIGITS)
        return self.s(1, string.ascii_letters) + self.s(self.rng.randrange(13, 21), ALNUM + "-_.")

    def t23_oracle_pw(self) -> str:
        body = self.s(1, string.ascii_uppercase) + self.s(self.rng.randrange(9, 14), ALNUM)
        cut = self.rng.randrange(3, len(body))
        return body[:cut] + self.pick(["#", "_", "$"]) + body[cut:] + self.s(2, DIGITS)

    def t23_snmp_community(self) -> str:
        shape = self.rng.randrange(4)
        if shape == 0:
            return self.pick(["public", "private"])
        if shape == 1:
            return "ardh-" + self.pick(["ro", "rw", "mon"]) + "-" + self.s(8, LOWNUM)
        if shape == 2:
            return self.pick(self.words) + self.s(3, DIGITS)
        return self.s(16, ALNUM)

    def t23_radius_secret(self) -> str:
        if self.rng.randrange(5) == 0:
            return "testing123"
        return self.s(self.rng.randrange(16, 25), ALNUM + "!#%+=")

    def t23_psk(self) -> str:
        if self.rng.randrange(2):
            return "-".join(self.pick(self.words) for _ in range(3)) + self.s(2, DIGITS)
        return self.s(self.rng.randrange(14, 22), ALNUM)

    def t23_mqtt_pw(self) -> str:
        if self.rng.randrange(2):
            return self.s(24, ALNUM)
        return self.pick(self.words) + "_" + self.pick(self.words) + self.s(3, DIGITS)

    def t23_b64_basic(self) -> str:
        user = self.pick([*self.users, "svc-ado", "ardh-deploy"])
        return base64.b64encode(f"{user}:{self._pw_core()}".encode()).decode()

    def t23_b64_pw(self) -> str:
        return base64.b64encode(self._pw_core().encode()).decode()

    def t23_cisco7(self) -> str:
        plain = self.rng.choice([self._pw_core(), self.t23_radius_secret()])
        seed = self.rng.randrange(16)
        out = f"{seed:02d}"
        for i, ch in enumerate(plain):
            out += f"{ord(ch) ^ ord(CISCO7_XLAT[(seed + i) % len(CISCO7_XLAT)]):02X}"
        return out

    # ------------------------------------------------------------------ positives: tokens
    def t23_azure_secret(self) -> str:
        return self.s(3, ALNUM + "_~.") + self.s(1, DIGITS) + "Q~" + self.s(34, ALNUM + "_~.-")

    def t23_storage_key(self) -> str:
        return self._b64(64)

    def t23_storage_conn(self) -> str:
        account = "st" + self.pick(["ardh", "ardenholt"]) + self.pick(["prd", "gis", "docs", "tst"])
        account += self.s(3, DIGITS)
        return (
            f"DefaultEndpointsProtocol=https;AccountName={account};"
            f"AccountKey={self._b64(64)};EndpointSuffix=core.windows.net"
        )

    def t23_sas(self) -> str:
        sig = quote(self._b64(32), safe="")
        day = self.rng.randrange(1, 28)
        return (
            f"sv=2022-11-02&ss=b&srt=co&sp=rl&se=2027-{self.rng.randrange(1, 13):02d}-{day:02d}"
            f"T17:00:00Z&st=2025-01-{day:02d}T08:00:00Z&spr=https&sig={sig}"
        )

    def t23_ado_pat(self) -> str:
        return self.s(52, B32L)

    def t23_jenkins_token(self) -> str:
        return "11" + self.s(32, HEX)

    def t23_github(self) -> str:
        body = self.s(30)
        crc = zlib.crc32(body.encode())
        check = ""
        while crc:
            crc, rest = divmod(crc, 62)
            check = B62[rest] + check
        return f"{self.pick(['ghp', 'ghp', 'gho'])}_{body}{check.rjust(6, '0')}"

    def t23_teams_webhook(self) -> str:
        ids = [str(uuid.UUID(int=self.rng.getrandbits(128), version=4)) for _ in range(3)]
        return (
            f"https://ardenholt.webhook.office.com/webhookb2/{ids[0]}@{ids[1]}"
            f"/IncomingWebhook/{self.s(32, HEX)}/{ids[2]}"
        )

    def t23_jwt(self) -> str:
        def part(obj: object) -> str:
            raw = json.dumps(obj, separators=(",", ":")).encode()
            return base64.urlsafe_b64encode(raw).decode().rstrip("=")

        header = part({"alg": "HS256", "typ": "JWT"})
        payload = part(
            {
                "jti": self.s(43, URLSAFE),
                "iat": 1_700_000_000 + self.rng.randrange(10**7),
                "sub": self.pick(self.users),
            }
        )
        key = self.rng.randbytes(32)
        sig = hmac.new(key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        return f"{header}.{payload}." + base64.urlsafe_b64encode(sig).decode().rstrip("=")

    def t23_ckan_legacy(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def t23_arcgis_key(self) -> str:
        return "AAPK" + self.s(32, HEX) + self.s(self.rng.randrange(60, 72), URLSAFE)

    def t23_arcgis_token(self) -> str:
        return self.s(self.rng.randrange(110, 140), URLSAFE) + ".."

    def t23_mapbox_sk(self) -> str:
        claims = json.dumps({"u": "ardenholt-gis", "a": self.s(25, LOWNUM)}, separators=(",", ":"))
        head = base64.urlsafe_b64encode(claims.encode()).decode().rstrip("=")
        return f"sk.{head}.{self.s(22, URLSAFE)}"

    def t23_hex32(self) -> str:
        return self.s(32, HEX)

    def t23_validation_key(self) -> str:
        return self.s(128, HEXU)

    def t23_decryption_key(self) -> str:
        return self.s(64, HEXU)

    def t23_drupal_salt(self) -> str:
        return self._b64(55, urlsafe=True, pad=False)

    def t23_wp_salt(self) -> str:
        return self.s(64, ALNUM + "!#$%&()*+,-./:;<=>?@[]^_`{|}~ ")

    def t23_urlsafe_secret(self) -> str:
        return self._b64(self.rng.choice([20, 24, 32]), urlsafe=True, pad=False)

    def t23_fortigate_token(self) -> str:
        return self.s(30, string.ascii_letters + DIGITS)

    def t23_recaptcha_secret(self) -> str:
        return "6L" + self.pick(list("cdef")) + self.s(5, URLSAFE) + "AAAAA" + self.s(27, URLSAFE)

    def t23_twilio_token(self) -> str:
        return self.s(32, HEX)

    def t23_sendgrid(self) -> str:
        return f"SG.{self.s(22, URLSAFE)}.{self.s(43, URLSAFE)}"

    def t23_nodered_secret(self) -> str:
        return self.rng.choice([self.s(32, ALNUM), self._pw_core(), self.s(64, HEX)])

    # ------------------------------------------------------------------ positives: keys
    def t23_rsa_key(self) -> str:
        key = self._rsa(2048)
        return (
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
            .decode()
            .strip()
        )

    def t23_pkcs8_key(self) -> str:
        key = self._rsa(2048) if self.rng.randrange(2) else self._ed25519()
        return (
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            .decode()
            .strip()
        )

    def t23_ec_key(self) -> str:
        secret = self.rng.getrandbits(255) | 1
        key = ec.derive_private_key(secret, ec.SECP256R1())
        return (
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
            .decode()
            .strip()
        )

    def t23_openssh_key(self) -> str:
        seed = self.rng.randbytes(32)
        key = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
        pub = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        blob = _sshstr(b"ssh-ed25519") + _sshstr(pub)
        check = self.rng.randbytes(4)
        comment = f"{self.pick(self.users)}@{self.pick(['ansible01', 'jenkins-agent', 'gis-etl'])}"
        priv = check + check + blob + _sshstr(seed + pub) + _sshstr(comment.encode())
        pad = 1
        while len(priv) % 8:
            priv += bytes([pad])
            pad += 1
        body = (
            b"openssh-key-v1\x00"
            + _sshstr(b"none")
            + _sshstr(b"none")
            + _sshstr(b"")
            + struct.pack(">I", 1)
            + _sshstr(blob)
            + _sshstr(priv)
        )
        return self._armor("OPENSSH PRIVATE KEY", body, 70)

    def t23_json_pem(self) -> str:
        return self.t23_pkcs8_key().replace("\n", "\\n") + "\\n"

    def t23_b64_pem(self) -> str:
        return base64.b64encode((self.t23_ec_key() + "\n").encode()).decode()

    # ------------------------------------------------------------------ negatives: references
    def t23_ref_ps(self) -> str:
        return self.pick(
            [
                "$env:VCENTER_PASSWORD",
                "(Get-Secret -Name vcenter-admin -AsPlainText)",
                "$cred.GetNetworkCredential().Password",
                "(Get-AutomationVariable -Name 'LdapBindPassword')",
                "$Using:ServiceAccountPassword",
                "$ConfigurationData.NonNodeData.DsrmPassword",
            ]
        )

    def t23_ref_ado(self) -> str:
        return self.pick(
            [
                "$(DbPassword)",
                "$(ARM_CLIENT_SECRET)",
                "$(System.AccessToken)",
                "#{DbPassword}#",
                "__SmtpPassword__",
                "$(ldap-bind-password)",
            ]
        )

    def t23_ref_jenkins(self) -> str:
        return self.pick(
            [
                "${env.DB_PASSWORD}",
                "$ORACLE_PW",
                "${ADO_PAT}",
                "${params.VCENTER_PASSWORD}",
                "credentials('ardh-geoserver-admin')",
            ]
        )

    def t23_ref_ansible(self) -> str:
        return self.pick(
            [
                "{{ vault_ldap_bind_password }}",
                "{{ lookup('env', 'RADIUS_SECRET') }}",
                "{{ vault_koha_db_pass }}",
                "{{ lookup('hashi_vault', 'secret=ardh/data/moodle:db_pass') }}",
                "{{ moodle_db_password }}",
            ]
        )

    def t23_ref_tf(self) -> str:
        return self.pick(
            [
                "var.sql_admin_password",
                "random_password.sql_admin.result",
                "data.azurerm_key_vault_secret.sql_admin.value",
                "azurerm_storage_account.gis.primary_access_key",
                "var.client_secret",
            ]
        )

    def t23_ref_php(self) -> str:
        return self.pick(
            [
                "getenv('DRUPAL_DB_PASSWORD')",
                "$_SERVER['DB_PASS']",
                "$_ENV['MOODLE_DB_PASS']",
                "getenv('WORDPRESS_DB_PASSWORD')",
                "file_get_contents('/run/secrets/db_password')",
            ]
        )

    def t23_ref_dotnet(self) -> str:
        return self.pick(
            [
                "#{BelastingDbPassword}#",
                "__PermitsDbPassword__",
                "$(DbPassword)",
                "%PERMITS_DB_PASSWORD%",
                "@Microsoft.KeyVault(SecretUri=https://kv-ardh-prd.vault.azure.net/secrets/permits-db/)",
            ]
        )

    def t23_ref_java(self) -> str:
        return self.pick(
            [
                "${VAULT::ds_permits::password::1}",
                "${env.PERMITS_DB_PASSWORD}",
                "${jboss.ds.password}",
                "${ENV=ORACLE_PASSWORD}",
                "${permits.db.password}",
            ]
        )

    def t23_ref_sh(self) -> str:
        return self.pick(
            [
                "$PGPASSWORD",
                "${KOHA_DB_PASS:?missing}",
                "$(cat /run/secrets/geoserver_admin)",
                '"$(az keyvault secret show --vault-name kv-ardh-prd -n gis-db --query value -o tsv)"',
                "${MQTT_PASSWORD}",
            ]
        )

    def t23_ref_py(self) -> str:
        return self.pick(
            [
                'os.environ["CKAN_API_TOKEN"]',
                'os.getenv("ARCGIS_PASSWORD")',
                "QgsSettings().value('ardenholt/token')",
                'keyring.get_password("ardenholt-gis", "svc_gis")',
                "settings.GEOSERVER_PASSWORD",
            ]
        )

    def t23_ref_py_nb(self) -> str:
        """A Python reference as it appears inside a notebook's JSON source strings."""
        return json.dumps(self.t23_ref_py())[1:-1]

    def t23_kv_ref(self) -> str:
        name = self.pick(["permits-db", "ldap-bind", "arcgis-admin", "smtp-relay", "ckan-token"])
        return self.pick(
            [
                f"@Microsoft.KeyVault(SecretUri=https://kv-ardh-prd.vault.azure.net/secrets/{name}/)",
                f"@Microsoft.KeyVault(VaultName=kv-ardh-prd;SecretName={name})",
                f"kv-ardh-prd/{name}",
            ]
        )

    def t23_secret_name(self) -> str:
        return self.pick(
            [
                "ardh-geoserver-admin",
                "ado-pat-pipelines",
                "oracle-permits",
                "vcenter-svc",
                "ldap-bind",
                "smtp-relay",
            ]
        )

    # ------------------------------------------------------------------ negatives: placeholders
    def t23_placeholder(self) -> str:
        return self.pick(
            [
                "<wachtwoord>",
                "<Passwort>",
                "<hasło>",
                "<password>",
                "VERVANGEN",
                "CHANGE_ME",
                "xxxxxxxx",
                "********",
                "[WIJZIGEN]",
                "<vul-hier-in>",
                "<hier-eintragen>",
                "TODO",
                "",
            ]
        )

    def t23_redacted(self) -> str:
        return self.pick(
            [
                "[REDACTED]",
                "[verwijderd]",
                "[entfernt]",
                "[usunięto]",
                "********",
                "•••••••••",
                "<redacted>",
                "(zie Keeper)",
                "(siehe Passwortsafe)",
                "(w sejfie haseł)",
            ]
        )

    def t23_fake(self) -> str:
        return self.pick(
            [
                "fake-password-for-tests",
                "not-a-real-secret",
                "dummy-token-" + self.pick(["unit", "ci", "local"]),
                "test-only-" + self.pick(["geen-echt-wachtwoord", "kein-echtes-passwort"]),
                "FAKE_" + self.pick(["TOKEN", "SECRET", "PAT"]) + "_FOR_TESTS",
                "nep-wachtwoord-test",
            ]
        )

    def t23_i18n(self) -> str:
        return self.pick(
            [
                "Wachtwoord vergeten?",
                "Uw wachtwoord is verlopen. Kies een nieuw wachtwoord.",
                "Het wachtwoord moet minimaal 12 tekens bevatten",
                "Passwort vergessen?",
                "Das Kennwort muss mindestens 12 Zeichen lang sein",
                "Ihr Zugangstoken ist abgelaufen",
                "Nie pamiętasz hasła?",
                "Hasło musi mieć co najmniej 12 znaków",
                "Nieprawidłowy login lub hasło",
                "Forgot your password?",
                "Your session token has expired, please sign in again",
            ]
        )

    def t23_doc_pw(self) -> str:
        """A password-shaped value on documentation hosts or in documented examples."""
        return self.pick(["secret", "password", "Passw0rd!", "wachtwoord", "hunter2", "P4ssw0rd"])

    def t23_azurite_key(self) -> str:
        # Azurite / storage emulator's published well-known development key.
        return "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

    def t23_recaptcha_test(self) -> str:
        # Google's documented reCAPTCHA v2 test keys (always pass, public by design).
        return self.pick(
            ["6LeIxAcTAAAAAJcZVRqyHh71UMIEGNQ_MXjiZKhI", "6LeIxAcTAAAAAGG-vFI1TnRWxMZNFuojJ4WifJWe"]
        )

    def t23_recaptcha_site(self) -> str:
        return "6L" + self.pick(list("cdef")) + self.s(5, URLSAFE) + "AAAAA" + self.s(27, URLSAFE)

    # ------------------------------------------------------------------ negatives: hashes
    def t23_bcrypt(self) -> str:
        return self.pick(["$2y$10$", "$2b$12$", "$2a$10$"]) + self.s(53, CRYPT64)

    def t23_phpass(self) -> str:
        return "$P$B" + self.s(31, CRYPT64)

    def t23_drupal7_hash(self) -> str:
        return "$S$D" + self.s(51, CRYPT64)

    def t23_md5crypt(self) -> str:
        return f"$1${self.s(4, CRYPT64)}${self.s(22, CRYPT64)}"

    def t23_cisco_hash(self) -> str:
        kind = self.pick(["8", "9"])
        return f"${kind}${self.s(14, CRYPT64)}${self.s(43, CRYPT64)}"

    def t23_ssha(self) -> str:
        return "{SSHA}" + self._b64(28)

    def t23_digest1(self) -> str:
        return "digest1:" + self._b64(48)

    def t23_mosquitto_hash(self) -> str:
        return f"$7$101${self._b64(12)}${self._b64(64)}"

    def t23_sha512crypt(self) -> str:
        return f"$6${self.s(16, CRYPT64)}${self.s(86, CRYPT64)}"

    # ------------------------------------------------------------------ negatives: encrypted
    def t23_fortigate_enc(self) -> str:
        return "ENC " + self._b64(self.rng.choice([84, 96, 108]))

    def t23_weblogic_enc(self) -> str:
        return "{AES256}" + self._b64(48)

    def t23_jenkins_enc(self) -> str:
        return "{AQAAABAAAAAQ" + self._b64(36) + "}"

    def t23_dpapi(self) -> str:
        return "01000000d08c9ddf0115d1118c7a00c04fc297eb01000000" + self.s(
            self.rng.choice([300, 364, 428]), HEX
        )

    def t23_nodered_enc(self) -> str:
        return self.s(32, HEX) + self._b64(self.rng.choice([48, 96, 144]))

    def t23_ansible_vault(self) -> str:
        body = self.s(80 * 5 + 34, HEX)
        rows = [body[i : i + 80] for i in range(0, len(body), 80)]
        return "$ANSIBLE_VAULT;1.1;AES256\n" + "\n".join(rows)

    def t23_sops(self) -> str:
        return (
            f"ENC[AES256_GCM,data:{self._b64(self.rng.randrange(12, 40))},iv:{self._b64(32)},"
            f"tag:{self._b64(16)},type:str]"
        )

    def t23_cms(self) -> str:
        """A DSC credential encrypted to the node's certificate (Protect-CmsMessage)."""
        body = base64.b64encode(self.rng.randbytes(48 * 8)).decode()
        rows = [body[i : i + 64] for i in range(0, len(body), 64)]
        # MOF files hold it on one line, with its line breaks escaped as ``\\n``.
        return "-----BEGIN CMS-----\\n" + "\\n".join(rows) + "\\n-----END CMS-----"

    def t23_encrypted_pem(self) -> str:
        return self.encrypted_key()

    # ------------------------------------------------------------------ negatives: public / ids
    def t23_cert(self) -> str:
        key = self._ed25519()
        cn = self.pick(
            ["adfs.ardenholt.nl", "portaal.ardenholt.nl", "gis.ardenholt.nl", "radius.ardenholt.nl"]
        )
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "NL"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Gemeente Ardenholt"),
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
            .serial_number(self.rng.getrandbits(120))
            .not_valid_before(start)
            .not_valid_after(start + datetime.timedelta(days=730))
            .sign(key, None)
        )
        return cert.public_bytes(serialization.Encoding.PEM).decode().strip()

    def t23_public_pem(self) -> str:
        key = self._ed25519() if self.rng.randrange(3) else self._rsa(1024)
        return (
            key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
            .strip()
        )

    def t23_ssh_pub(self) -> str:
        key = self._ed25519()
        line = (
            key.public_key()
            .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
            .decode()
        )
        return (
            f"{line} {self.pick(self.users)}@{self.pick(['ansible01', 'beheer-ws12', 'gis-etl'])}"
        )

    def t23_ssh_fpr(self) -> str:
        return "SHA256:" + self._b64(32, pad=False)

    def t23_thumbprint(self) -> str:
        return self.s(40, HEXU)

    def t23_uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def t23_arcgis_item(self) -> str:
        return self.s(32, HEX)

    def t23_twilio_sid(self) -> str:
        return "AC" + self.s(32, HEX)

    def t23_git_sha(self) -> str:
        return self.s(40, HEX)

    def t23_image_digest(self) -> str:
        return "sha256:" + self.s(64, HEX)

    def t23_authcfg(self) -> str:
        return self.s(7, LOWNUM)

    def t23_case_no(self) -> str:
        return self.pick(
            [
                f"OMG-{self.rng.randrange(2023, 2027)}-{self.s(6, DIGITS)}",
                f"Z/{self.rng.randrange(2023, 2027)}/{self.s(5, DIGITS)}",
                f"INC{self.s(7, DIGITS)}",
                f"WABO-{self.s(4, UPNUM)}-{self.s(4, UPNUM)}",
            ]
        )

    def t23_sri(self) -> str:
        return "sha384-" + self._b64(48)

    def t23_snmp_engine(self) -> str:
        return "80001F8880" + self.s(18, HEXU)

    def t23_mac(self) -> str:
        return ":".join(self.s(2, HEX) for _ in range(6))

    def t23_key_name(self) -> str:
        return self.pick(
            ["DB_PASSWORD", "LdapBindPassword", "ArcGisToken", "password", "client_secret"]
        )

    def t23_doc_token(self) -> str:
        """A token-shaped value in documentation, on documentation hosts."""
        return self.s(32, HEX)

    def t23_autogen(self) -> str:
        return self.pick(
            ["AutoGenerate,IsolateApps", "AutoGenerate", "AutoGenerate,IsolateByAppId"]
        )

    def t23_policy(self) -> str:
        return self.pick(["12", "14", "90", "365", "5", "true", "false"])


VALUES = Tune23Values


def _t(path: str, gen: str, positive: bool, text: str) -> evalset.Template:
    return (path, text, gen, positive)


# ---------------------------------------------------------------------------------------------
# Citizen portal: Drupal (portaal.ardenholt.nl), WordPress (bezoek-ardenholt.nl), PHP glue
# ---------------------------------------------------------------------------------------------
TEMPLATES: list[evalset.Template] = [
    _t(
        "portaal-drupal/web/sites/default/settings.local.php",
        "t23_pw",
        True,
        """<?php

// phpcs:ignoreFile
/**
 * Lokale instellingen voor de acceptatieomgeving van het burgerportaal.
 * NIET committen naar main -- alleen op acc-web01 (zie README-beheer.md).
 */

$settings['container_yamls'][] = DRUPAL_ROOT . '/sites/development.services.yml';
$config['system.logging']['error_level'] = 'verbose';
$config['system.performance']['css']['preprocess'] = FALSE;
$config['system.performance']['js']['preprocess'] = FALSE;

$databases['default']['default'] = [
  'database' => 'portaal_acc',
  'username' => 'portaal_acc',
  'password' => '{V}',
  'prefix' => '',
  'host' => 'acc-mysql01.ardenholt.local',
  'port' => '3306',
  'namespace' => 'Drupal\\mysql\\Driver\\Database\\mysql',
  'driver' => 'mysql',
  'autoload' => 'core/modules/mysql/src/Driver/Database/mysql/',
];

// Migratie vanuit het oude Drupal 7 portaal (loopt tot Q3).
$databases['migrate']['default'] = [
  'database' => 'portaal_d7',
  'username' => 'migrate_ro',
  'password' => '{V2}',
  'host' => 'legacy-mysql.ardenholt.local',
  'driver' => 'mysql',
];

$settings['trusted_host_patterns'] = [
  '^acc-portaal\\.ardenholt\\.nl$',
  '^localhost$',
];
$settings['file_private_path'] = '/srv/portaal/private';
$settings['skip_permissions_hardening'] = TRUE;
""",
    ),
    _t(
        "portaal-drupal/web/sites/default/settings.php",
        "t23_ref_php",
        False,
        """<?php

/**
 * Productie-instellingen burgerportaal Gemeente Ardenholt.
 *
 * Geheimen komen uit de omgeving (systemd EnvironmentFile op prd-web01/02).
 */

$databases['default']['default'] = [
  'database' => getenv('DRUPAL_DB_NAME') ?: 'portaal',
  'username' => getenv('DRUPAL_DB_USER') ?: 'portaal',
  'password' => {V},
  'prefix' => '',
  'host' => getenv('DRUPAL_DB_HOST') ?: 'prd-mysql01.ardenholt.local',
  'port' => '3306',
  'driver' => 'mysql',
];

$settings['hash_salt'] = getenv('DRUPAL_HASH_SALT');
$settings['update_free_access'] = FALSE;
$settings['config_sync_directory'] = '../config/sync';
$settings['reverse_proxy'] = TRUE;
$settings['reverse_proxy_addresses'] = ['10.20.1.10', '10.20.1.11'];

// SMTP via de relay van de gemeente (Office 365 connector).
$config['symfony_mailer.mailer_transport.smtp']['configuration']['user'] = 'portaal@ardenholt.nl';
$config['symfony_mailer.mailer_transport.smtp']['configuration']['pass'] = getenv('SMTP_RELAY_PASSWORD');

if (file_exists($app_root . '/' . $site_path . '/settings.local.php')) {
  include $app_root . '/' . $site_path . '/settings.local.php';
}
""",
    ),
    _t(
        "portaal-drupal/web/sites/default/settings.prd.php",
        "t23_drupal_salt",
        True,
        """<?php

/**
 * @file
 * Production overrides, deployed by Ansible role `portaal_drupal` (template copied here
 * by the supplier during the 2024 handover -- to be moved back into the role).
 */

$settings['hash_salt'] = '{V}';

$settings['deployment_identifier'] = \\Drupal::VERSION . '-ardh-24.11';
$settings['file_temp_path'] = '/var/tmp/portaal';
$settings['maintenance_theme'] = 'ardenholt_gov';
$config['system.site']['mail'] = 'noreply@ardenholt.nl';
$config['system.site']['name'] = 'Gemeente Ardenholt';
""",
    ),
    _t(
        "portaal-drupal/config/sync/captcha.settings.recaptcha.yml",
        "t23_recaptcha_site",
        False,
        """_core:
  default_config_hash: 5bJ0cQ-portaal
recaptcha_site_key: {V}
recaptcha_secret_key: ''
recaptcha_verify_url: 'https://www.google.com/recaptcha/api/siteverify'
recaptcha_tabindex: 0
recaptcha_noscript: false
recaptcha_use_globally: false
widget:
  theme: light
  type: image
  size: ''
# De secret key staat NIET in config sync; die komt uit settings.php ($config override).
""",
    ),
    _t(
        "portaal-drupal/web/sites/default/settings.captcha.php",
        "t23_recaptcha_secret",
        True,
        """<?php

/**
 * reCAPTCHA voor de formulieren "Melding openbare ruimte" en "Afspraak maken".
 * Overschrijft de lege secret key uit config/sync.
 */
$config['recaptcha.settings']['secret_key'] = '{V}';

// Fallback: als Google niet bereikbaar is, laat het formulier door en log een waarschuwing.
$config['recaptcha.settings']['verify_url'] = 'https://www.google.com/recaptcha/api/siteverify';
$settings['ardh_recaptcha_fail_open'] = TRUE;
""",
    ),
    _t(
        "portaal-drupal/web/modules/custom/ardh_forms/tests/src/Kernel/RecaptchaTest.php",
        "t23_recaptcha_test",
        False,
        """<?php

namespace Drupal\\Tests\\ardh_forms\\Kernel;

use Drupal\\KernelTests\\KernelTestBase;

/**
 * Tests the reCAPTCHA override with Google's published test keys (always pass).
 *
 * @group ardh_forms
 */
class RecaptchaTest extends KernelTestBase {

  protected static $modules = ['system', 'captcha', 'recaptcha', 'ardh_forms'];

  public function testVerifyPassesWithTestKey(): void {
    $this->config('recaptcha.settings')
      ->set('site_key', '{V}')
      ->set('secret_key', '{V2}')
      ->save();
    $result = \\Drupal::service('ardh_forms.captcha_verifier')->verify('token-from-widget');
    $this->assertTrue($result->isSuccess());
  }

}
""",
    ),
    _t(
        "portaal-drupal/web/modules/custom/ardh_zaken/src/Client/ZaakClient.php",
        "t23_pw",
        True,
        """<?php

namespace Drupal\\ardh_zaken\\Client;

use GuzzleHttp\\ClientInterface;

/**
 * Haalt zaakstatussen op uit het zaaksysteem (ZGW API) voor "Mijn Ardenholt".
 */
final class ZaakClient {

  private const BASE = 'https://zaken.ardenholt.local/zaken/api/v1';

  // TODO(WdV): naar settings.php verplaatsen; tijdelijk hardcoded voor de demo aan de raad.
  private const CLIENT_ID = 'portaal-mijnardenholt';
  private const SECRET = '{V}';

  public function __construct(private readonly ClientInterface $http) {}

  public function statusVoorZaak(string $zaakId): array {
    $response = $this->http->request('GET', self::BASE . '/zaken/' . rawurlencode($zaakId), [
      'headers' => ['Authorization' => 'Bearer ' . $this->token()],
      'timeout' => 5,
    ]);
    return json_decode((string) $response->getBody(), TRUE);
  }

  private function token(): string {
    // ZGW: JWT ondertekend met het gedeelde secret (HS256).
    return \\Firebase\\JWT\\JWT::encode([
      'iss' => self::CLIENT_ID,
      'iat' => time(),
      'client_id' => self::CLIENT_ID,
    ], self::SECRET, 'HS256');
  }

}
""",
    ),
    _t(
        "portaal-drupal/web/modules/custom/ardh_zaken/ardh_zaken.services.yml",
        "t23_ref_php",
        False,
        """services:
  ardh_zaken.client:
    class: Drupal\\ardh_zaken\\Client\\ZaakClient
    arguments: ['@http_client']
  ardh_zaken.secret_provider:
    class: Drupal\\ardh_zaken\\SecretProvider
    # wordt in de constructor gelezen via {V}
    arguments: ['@config.factory']
""",
    ),
    _t(
        "portaal-drupal/translations/nl/ardh_account.nl.po",
        "t23_i18n",
        False,
        """# Dutch translation of Ardenholt account module
msgid ""
msgstr ""
"Project-Id-Version: ardh_account 2.3\\n"
"Language: nl\\n"
"MIME-Version: 1.0\\n"
"Content-Type: text/plain; charset=UTF-8\\n"

msgid "Password"
msgstr "Wachtwoord"

msgid "Confirm password"
msgstr "Bevestig wachtwoord"

msgid "Password hint"
msgstr "{V}"

msgid "Your password has been reset."
msgstr "Uw wachtwoord is opnieuw ingesteld."

msgid "Log in with DigiD"
msgstr "Inloggen met DigiD"
""",
    ),
    _t(
        "bezoek-wordpress/wp-config.php",
        "t23_wp_salt",
        True,
        """<?php
/**
 * WordPress configuratie voor bezoek-ardenholt.nl (toerisme & evenementen).
 * Gehost door Webbureau Kleiweg B.V. tot de overdracht in maart.
 */

define( 'DB_NAME', 'wp_bezoek' );
define( 'DB_USER', 'wp_bezoek' );
define( 'DB_PASSWORD', getenv( 'WORDPRESS_DB_PASSWORD' ) );
define( 'DB_HOST', 'mysql-toerisme.ardenholt.local' );
define( 'DB_CHARSET', 'utf8mb4' );
define( 'DB_COLLATE', '' );

define( 'AUTH_KEY',         '{V}' );
define( 'SECURE_AUTH_KEY',  '{V2}' );
define( 'LOGGED_IN_KEY',    '{V3}' );
define( 'NONCE_KEY',        '{V4}' );

$table_prefix = 'bz_';

define( 'WP_DEBUG', false );
define( 'DISALLOW_FILE_EDIT', true );
define( 'FORCE_SSL_ADMIN', true );

if ( ! defined( 'ABSPATH' ) ) {
	define( 'ABSPATH', __DIR__ . '/' );
}
require_once ABSPATH . 'wp-settings.php';
""",
    ),
    _t(
        "bezoek-wordpress/wp-config-staging.php",
        "t23_weak_pw",
        True,
        """<?php
// Staging bij Kleiweg -- kopie van productie, wekelijks ververst.
define( 'DB_NAME', 'wp_bezoek_stg' );
define( 'DB_USER', 'root' );
define( 'DB_PASSWORD', '{V}' );
define( 'DB_HOST', 'staging-db.kleiweg-hosting.nl:3307' );

define( 'WP_ENVIRONMENT_TYPE', 'staging' );
define( 'WP_DEBUG', true );
define( 'WP_DEBUG_LOG', '/var/log/wp/bezoek-stg.log' );
$table_prefix = 'bz_';
require_once ABSPATH . 'wp-settings.php';
""",
    ),
    _t(
        "bezoek-wordpress/wp-content/mu-plugins/ardh-agenda-sync.php",
        "t23_hex32",
        True,
        """<?php
/**
 * Plugin Name: Ardenholt Agenda Sync
 * Description: Synchroniseert evenementen uit UiTdatabank naar de agenda (cron, elk uur).
 * Author: Gemeente Ardenholt / Team Online
 */

defined( 'ABSPATH' ) || exit;

const ARDH_UIT_ENDPOINT = 'https://io.uitdatabank.be/events/';
const ARDH_UIT_KEY      = '{V}';

add_action( 'ardh_agenda_sync', function () {
	$response = wp_remote_get( ARDH_UIT_ENDPOINT . '?regions=ardenholt&limit=200', [
		'headers' => [ 'x-api-key' => ARDH_UIT_KEY ],
		'timeout' => 20,
	] );
	if ( is_wp_error( $response ) ) {
		error_log( 'ardh-agenda-sync: ' . $response->get_error_message() );
		return;
	}
	$events = json_decode( wp_remote_retrieve_body( $response ), true );
	foreach ( $events['member'] ?? [] as $event ) {
		ardh_agenda_upsert( $event );
	}
} );
""",
    ),
    _t(
        "bezoek-wordpress/wp-content/mu-plugins/ardh-users-export.sql",
        "t23_phpass",
        False,
        """-- Export wp_users voor migratie naar Keycloak (alleen beheerders), 12-02
-- Wachtwoordhashes worden bij eerste login opnieuw gehasht.
INSERT INTO `bz_users` (`ID`, `user_login`, `user_pass`, `user_nicename`, `user_email`, `user_registered`, `user_status`, `display_name`) VALUES
(1, 'kleiweg-admin', '{V}', 'kleiweg-admin', 'support@kleiweg-hosting.nl', '2019-04-02 09:12:44', 0, 'Kleiweg Support'),
(7, 'redactie-toerisme', '{V2}', 'redactie-toerisme', 'toerisme@ardenholt.nl', '2020-01-15 13:40:02', 0, 'Redactie Toerisme'),
(12, 'jvandam', '{V3}', 'jvandam', 'j.vandam@ardenholt.nl', '2023-06-30 08:01:57', 0, 'Joris van Dam');
""",
    ),
    _t(
        "portaal-drupal/db/legacy-d7-users.sql",
        "t23_drupal7_hash",
        False,
        """-- Drupal 7 users (oude portaal) -> migratie 2024; wachtwoorden blijven geldig via phpass-compat.
INSERT INTO users (uid, name, pass, mail, status, created) VALUES
  (1, 'beheer', '{V}', 'ict-beheer@ardenholt.nl', 1, 1356998400),
  (214, 'm.kowalska', '{V2}', 'm.kowalska@ardenholt.nl', 1, 1467331200);
""",
    ),
    _t(
        "portaal-php/lib/db.inc.php",
        "t23_pw",
        True,
        """<?php
/*
 * Oude PHP-koppeling "Afvalkalender" (2014). Draait nog op web-legacy01 onder PHP 7.4.
 * Vervangen door de Drupal-module ardh_afval zodra de ROVA-koppeling klaar is.
 */

$db_host = "sql-legacy01.ardenholt.local";
$db_name = "afvalkalender";
$db_user = "afval_web";
$db_pass = "{V}";

$conn = mysqli_connect($db_host, $db_user, $db_pass, $db_name);
if (!$conn) {
    error_log("Afvalkalender: verbinding mislukt: " . mysqli_connect_error());
    http_response_code(503);
    exit("De afvalkalender is tijdelijk niet beschikbaar.");
}
mysqli_set_charset($conn, "utf8");
""",
    ),
    _t(
        "portaal-php/lib/db.inc.php.dist",
        "t23_placeholder",
        False,
        """<?php
/*
 * Kopieer naar db.inc.php en vul de gegevens in (zie wiki: Afvalkalender > Installatie).
 */

$db_host = "sql-legacy01.ardenholt.local";
$db_name = "afvalkalender";
$db_user = "afval_web";
$db_pass = "{V}";

$conn = mysqli_connect($db_host, $db_user, $db_pass, $db_name);
""",
    ),
    _t(
        "portaal-php/api/melding.php",
        "t23_sendgrid",
        True,
        """<?php
// Bevestigingsmail voor "Melding openbare ruimte" (oude route, nog gebruikt door de app).
require __DIR__ . '/../vendor/autoload.php';

$email = new \\SendGrid\\Mail\\Mail();
$email->setFrom("meldingen@ardenholt.nl", "Gemeente Ardenholt");
$email->setSubject("Uw melding is ontvangen - " . $meldingNummer);
$email->addTo($melder['email'], $melder['naam']);
$email->addContent("text/plain", renderBevestiging($melding));

$sendgrid = new \\SendGrid('{V}');
try {
    $response = $sendgrid->send($email);
    if ($response->statusCode() >= 400) {
        error_log("melding.php: SendGrid " . $response->statusCode());
    }
} catch (Exception $e) {
    error_log('melding.php: ' . $e->getMessage());
}
""",
    ),
    _t(
        "portaal-php/.env.example",
        "t23_placeholder",
        False,
        """# Afvalkalender / meldingen API -- voorbeeldconfiguratie
APP_ENV=production
DB_HOST=sql-legacy01.ardenholt.local
DB_NAME=afvalkalender
DB_USER=afval_web
DB_PASS={V}
SENDGRID_API_KEY={V2}
ROVA_API_URL=https://api.rova.nl/v2
ROVA_API_KEY={V3}
""",
    ),
    _t(
        "portaal-php/.env",
        "t23_pw",
        True,
        """APP_ENV=production
APP_DEBUG=false
DB_HOST=sql-legacy01.ardenholt.local
DB_NAME=afvalkalender
DB_USER=afval_web
DB_PASS={V}
ROVA_API_URL=https://api.rova.nl/v2
ROVA_API_USER=ardenholt
ROVA_API_PASSWORD={V2}
LOG_CHANNEL=syslog
""",
    ),
    _t(
        "portaal-drupal/docs/nl/beheer-handleiding.md",
        "t23_doc_pw",
        False,
        """# Beheerhandleiding burgerportaal

## Lokale ontwikkelomgeving

1. Clone de repository en start DDEV: `ddev start`.
2. Importeer de geanonimiseerde dump: `ddev import-db --file=dumps/portaal-anon.sql.gz`.
3. Log in op https://portaal.ddev.site/user/login met gebruiker `admin` en wachtwoord
   `{V}` (wordt door `ddev drush uli` ook gereset; alleen lokaal!).

## Verbinding met de testdatabase (voorbeeld)

```
mysql://portaal:{V2}@db.example.com:3306/portaal
```

Vervang host en gegevens door die uit de wachtwoordkluis (map *Portaal / Acceptatie*).

## Rollen

| Rol           | Wie                    |
|---------------|------------------------|
| redacteur     | Team Online            |
| beheerder     | ICT-beheer (2e lijn)   |
| leverancier   | Kleiweg (tijdelijk)    |
""",
    ),
    _t(
        "portaal-drupal/web/libraries/ardh-kaart/ardh-kaart.libraries.yml",
        "t23_sri",
        False,
        """kaart:
  version: 3.2.1
  js:
    https://cdn.jsdelivr.net/npm/leaflet@1.9.4/dist/leaflet.js:
      type: external
      minified: true
      attributes:
        integrity: {V}
        crossorigin: anonymous
  css:
    theme:
      https://cdn.jsdelivr.net/npm/leaflet@1.9.4/dist/leaflet.css:
        type: external
        attributes:
          integrity: {V2}
          crossorigin: anonymous
  dependencies:
    - core/drupal
""",
    ),
]

# ---------------------------------------------------------------------------------------------
# Permits (Omgevingsvergunningen, "VERA") and municipal tax (Belastingen, "BELIS"): Java EE on
# WebLogic and WildFly, Oracle, .NET on IIS, classic ASP leftovers
# ---------------------------------------------------------------------------------------------
TEMPLATES += [
    _t(
        "vera-permits/domains/vera_domain/servers/AdminServer/security/boot.properties",
        "t23_pw",
        True,
        """# Written by ICT-beheer before first start of the new AdminServer (13-03).
# WebLogic encrypts these on first boot; this copy was taken from the install share.
username=weblogic
password={V}
""",
    ),
    _t(
        "vera-permits/domains/vera_domain/servers/ms1/data/nodemanager/boot.properties",
        "t23_weblogic_enc",
        False,
        """#Tue Mar 18 07:12:44 CET 2025
password={V}
username={V2}
""",
    ),
    _t(
        "vera-permits/wlst/create_datasources.py",
        "t23_oracle_pw",
        True,
        """# WLST script -- creates the VERA JDBC data sources on vera_domain.
# Run: $ORACLE_HOME/oracle_common/common/bin/wlst.sh create_datasources.py
# Author: Ordina consultant (handover 2023), adjusted by ICT-beheer.

connect('weblogic', '{V}', 't3://vera-adm01.ardenholt.local:7001')
edit()
startEdit()

def make_ds(name, jndi, url, user, pw, target):
    cd('/')
    ds = cmo.createJDBCSystemResource(name)
    cd('/JDBCSystemResources/' + name + '/JDBCResource/' + name)
    cmo.setName(name)
    cd('JDBCDataSourceParams/' + name)
    set('JNDINames', jarray.array([String(jndi)], String))
    cd('/JDBCSystemResources/' + name + '/JDBCResource/' + name + '/JDBCDriverParams/' + name)
    cmo.setUrl(url)
    cmo.setDriverName('oracle.jdbc.OracleDriver')
    set('Password', pw)
    cd('Properties/' + name)
    cmo.createProperty('user').setValue(user)
    ds.addTarget(getMBean('/Clusters/' + target))

make_ds('VeraDS', 'jdbc/vera', 'jdbc:oracle:thin:@//ora-vera01.ardenholt.local:1521/VERAPRD',
        'VERA_APP', '{V2}', 'vera_cluster')
make_ds('VeraReportDS', 'jdbc/veraReport', 'jdbc:oracle:thin:@//ora-vera01.ardenholt.local:1521/VERAPRD',
        'VERA_RPT', '{V3}', 'vera_cluster')

save()
activate()
disconnect()
""",
    ),
    _t(
        "vera-permits/domains/vera_domain/config/jdbc/VeraDS-jdbc.xml",
        "t23_weblogic_enc",
        False,
        """<?xml version='1.0' encoding='UTF-8'?>
<jdbc-data-source xmlns="http://xmlns.oracle.com/weblogic/jdbc-data-source" xmlns:sec="http://xmlns.oracle.com/weblogic/security" xmlns:wls="http://xmlns.oracle.com/weblogic/security/wls" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="http://xmlns.oracle.com/weblogic/jdbc-data-source http://xmlns.oracle.com/weblogic/jdbc-data-source/1.0/jdbc-data-source.xsd">
  <name>VeraDS</name>
  <datasource-type>GENERIC</datasource-type>
  <jdbc-driver-params>
    <url>jdbc:oracle:thin:@//ora-vera01.ardenholt.local:1521/VERAPRD</url>
    <driver-name>oracle.jdbc.OracleDriver</driver-name>
    <properties>
      <property>
        <name>user</name>
        <value>VERA_APP</value>
      </property>
    </properties>
    <password-encrypted>{V}</password-encrypted>
  </jdbc-driver-params>
  <jdbc-connection-pool-params>
    <initial-capacity>5</initial-capacity>
    <max-capacity>40</max-capacity>
    <test-table-name>SQL ISVALID</test-table-name>
  </jdbc-connection-pool-params>
  <jdbc-data-source-params>
    <jndi-name>jdbc/vera</jndi-name>
    <global-transactions-protocol>OnePhaseCommit</global-transactions-protocol>
  </jdbc-data-source-params>
</jdbc-data-source>
""",
    ),
    _t(
        "belis-tax/wildfly/standalone/configuration/standalone-belis.xml",
        "t23_pw",
        True,
        """<?xml version="1.0" encoding="UTF-8"?>
<!-- BELIS belastingen: WildFly 26 standalone profile (excerpt, datasources subsystem) -->
<server xmlns="urn:jboss:domain:19.0">
    <profile>
        <subsystem xmlns="urn:jboss:domain:datasources:7.0">
            <datasources>
                <datasource jndi-name="java:jboss/datasources/BelisDS" pool-name="BelisDS" enabled="true" use-java-context="true">
                    <connection-url>jdbc:oracle:thin:@ora-belis01.ardenholt.local:1521:BELISP</connection-url>
                    <driver>oracle</driver>
                    <pool>
                        <min-pool-size>5</min-pool-size>
                        <max-pool-size>30</max-pool-size>
                    </pool>
                    <security>
                        <user-name>BELIS_OWNER</user-name>
                        <password>{V}</password>
                    </security>
                    <validation>
                        <valid-connection-checker class-name="org.jboss.jca.adapters.jdbc.extensions.oracle.OracleValidConnectionChecker"/>
                        <background-validation>true</background-validation>
                    </validation>
                </datasource>
                <drivers>
                    <driver name="oracle" module="com.oracle.ojdbc8">
                        <xa-datasource-class>oracle.jdbc.xa.client.OracleXADataSource</xa-datasource-class>
                    </driver>
                </drivers>
            </datasources>
        </subsystem>
    </profile>
</server>
""",
    ),
    _t(
        "belis-tax/wildfly/standalone/configuration/standalone-belis-prd.xml",
        "t23_ref_java",
        False,
        """<?xml version="1.0" encoding="UTF-8"?>
<server xmlns="urn:jboss:domain:19.0">
    <profile>
        <subsystem xmlns="urn:jboss:domain:datasources:7.0">
            <datasources>
                <datasource jndi-name="java:jboss/datasources/BelisDS" pool-name="BelisDS" enabled="true">
                    <connection-url>jdbc:oracle:thin:@ora-belis01.ardenholt.local:1521:BELISP</connection-url>
                    <driver>oracle</driver>
                    <security>
                        <user-name>BELIS_OWNER</user-name>
                        <password>{V}</password>
                    </security>
                </datasource>
            </datasources>
        </subsystem>
    </profile>
</server>
""",
    ),
    _t(
        "belis-tax/wildfly/bin/jboss-cli-add-mail.cli",
        "t23_pw",
        True,
        """# BELIS: aanslagbiljetten per e-mail (MijnBelastingen). Uitvoeren met:
#   ./jboss-cli.sh --connect --file=jboss-cli-add-mail.cli
batch
/socket-binding-group=standard-sockets/remote-destination-outbound-socket-binding=belis-smtp:add(host=smtp-relay.ardenholt.local, port=587)
/subsystem=mail/mail-session=belis:add(jndi-name=java:jboss/mail/Belis, from=belastingen@ardenholt.nl)
/subsystem=mail/mail-session=belis/server=smtp:add(outbound-socket-binding-ref=belis-smtp, username=svc_belis_mail, password="{V}", tls=true)
run-batch
reload
""",
    ),
    _t(
        "belis-tax/src/main/resources/application-test.properties",
        "t23_fake",
        False,
        """# Integratietests BELIS (Testcontainers Oracle XE) -- geen echte gegevens
belis.datasource.url=jdbc:oracle:thin:@localhost:1521/XEPDB1
belis.datasource.username=belis_test
belis.datasource.password={V}
belis.stuf.endpoint=http://localhost:8089/stuf-bg
belis.stuf.password={V2}
belis.batch.chunk-size=50
""",
    ),
    _t(
        "belis-tax/src/main/resources/application.properties",
        "t23_ref_java",
        False,
        """belis.datasource.jndi=java:jboss/datasources/BelisDS
belis.stuf.endpoint=https://stuf.ardenholt.local/stuf-bg/v0310
belis.stuf.username=BELIS
belis.stuf.password={V}
belis.aanslag.pdf.dir=/data/belis/aanslagen
belis.mail.session=java:jboss/mail/Belis
""",
    ),
    _t(
        "belis-tax/scripts/nightly_export.sh",
        "t23_oracle_pw",
        True,
        """#!/bin/bash
# Nachtelijke export WOZ-waarden naar het datawarehouse (cron: 02:15 op ora-belis01)
set -euo pipefail
export ORACLE_HOME=/u01/app/oracle/product/19.0.0/dbhome_1
export NLS_LANG=DUTCH_THE\\ NETHERLANDS.AL32UTF8
OUT=/data/export/woz_$(date +%Y%m%d).csv

sqlplus -s BELIS_RPT/{V}@BELISP <<SQL > "$OUT"
set pagesize 0 feedback off heading off colsep ';'
select objectnummer, wozwaarde, peildatum from woz_objecten where status = 'A';
exit
SQL

gzip -f "$OUT"
scp "$OUT.gz" dwh-loader@dwh01.ardenholt.local:/incoming/woz/
""",
    ),
    _t(
        "belis-tax/scripts/refresh_acc.sh",
        "t23_ref_sh",
        False,
        """#!/bin/bash
# Ververs BELIS-acceptatie vanuit productie-export (handmatig, op verzoek van Team Belastingen)
set -euo pipefail
ORA_PW={V}
expdp BELIS_OWNER/"$ORA_PW"@BELISP schemas=BELIS_OWNER directory=DP_DIR dumpfile=belis_%U.dmp parallel=4
impdp BELIS_OWNER/"$ORA_PW"@BELISA schemas=BELIS_OWNER directory=DP_DIR dumpfile=belis_%U.dmp table_exists_action=replace
""",
    ),
    _t(
        "belis-tax/db/users.sql",
        "t23_oracle_pw",
        True,
        """-- BELIS schema users (run as SYSDBA during install of acceptance, ticket INC0048821)
CREATE USER BELIS_OWNER IDENTIFIED BY "{V}"
  DEFAULT TABLESPACE BELIS_DATA TEMPORARY TABLESPACE TEMP QUOTA UNLIMITED ON BELIS_DATA;
CREATE USER BELIS_RPT IDENTIFIED BY "{V2}" DEFAULT TABLESPACE USERS;
GRANT CREATE SESSION TO BELIS_RPT;
GRANT SELECT ANY TABLE TO BELIS_RPT;
ALTER USER BELIS_RPT PROFILE APP_NOEXPIRE;
""",
    ),
    _t(
        "belis-tax/db/users_prd.sql",
        "t23_placeholder",
        False,
        """-- BELIS schema users for production. The DBA team fills in the passwords from the
-- password safe at install time; never commit them.
CREATE USER BELIS_OWNER IDENTIFIED BY "{V}"
  DEFAULT TABLESPACE BELIS_DATA TEMPORARY TABLESPACE TEMP QUOTA UNLIMITED ON BELIS_DATA;
CREATE USER BELIS_RPT IDENTIFIED BY "{V2}" DEFAULT TABLESPACE USERS;
GRANT CREATE SESSION TO BELIS_RPT;
""",
    ),
    _t(
        "belis-tax/db/wallet/README.txt",
        "t23_pw",
        True,
        """Oracle Wallet voor BELIS batch (auto-login)
=========================================

Aangemaakt op ora-belis01 met:

  mkstore -wrl /u01/app/oracle/wallet -create
  mkstore -wrl /u01/app/oracle/wallet -createCredential BELISP BELIS_BATCH

Wallet-wachtwoord (nodig om credentials te wijzigen): {V}

sqlnet.ora:
  WALLET_LOCATION = (SOURCE = (METHOD = FILE) (METHOD_DATA = (DIRECTORY = /u01/app/oracle/wallet)))
  SQLNET.WALLET_OVERRIDE = TRUE
""",
    ),
    _t(
        "permits-dotnet/Ardenholt.Permits.Web/Web.config",
        "t23_pw",
        True,
        """<?xml version="1.0" encoding="utf-8"?>
<!--
  Ardenholt.Permits.Web (legacy WebForms front-end for VERA), IIS app pool "PermitsWeb".
-->
<configuration>
  <connectionStrings>
    <add name="PermitsDb" connectionString="Data Source=sql-permits01\\PERMITS;Initial Catalog=Permits;User ID=permits_web;Password={V};Encrypt=True;TrustServerCertificate=True" providerName="System.Data.SqlClient" />
    <add name="Archief" connectionString="Data Source=sql-archief01;Initial Catalog=DMS;Integrated Security=SSPI" providerName="System.Data.SqlClient" />
  </connectionStrings>
  <appSettings>
    <add key="VeraBaseUrl" value="https://vera.ardenholt.local/vera/api/" />
    <add key="VeraUser" value="permits_web" />
    <add key="DocumentRoot" value="\\\\fs01\\vergunningen$\\" />
    <add key="aspnet:MaxHttpCollectionKeys" value="2000" />
  </appSettings>
  <system.web>
    <compilation debug="false" targetFramework="4.8" />
    <httpRuntime targetFramework="4.8" maxRequestLength="51200" />
    <authentication mode="Windows" />
  </system.web>
</configuration>
""",
    ),
    _t(
        "permits-dotnet/Ardenholt.Permits.Web/Web.Release.config",
        "t23_ref_dotnet",
        False,
        """<?xml version="1.0" encoding="utf-8"?>
<configuration xmlns:xdt="http://schemas.microsoft.com/XML-Document-Transform">
  <connectionStrings>
    <add name="PermitsDb"
         connectionString="Data Source=sql-permits01\\PERMITS;Initial Catalog=Permits;User ID=permits_web;Password={V};Encrypt=True"
         xdt:Transform="SetAttributes" xdt:Locator="Match(name)" />
  </connectionStrings>
  <appSettings>
    <add key="VeraPassword" value="{V2}" xdt:Transform="SetAttributes" xdt:Locator="Match(key)" />
  </appSettings>
  <system.web>
    <compilation xdt:Transform="RemoveAttributes(debug)" />
  </system.web>
</configuration>
""",
    ),
    _t(
        "permits-dotnet/Ardenholt.Permits.Web/Web.machinekey.config",
        "t23_validation_key",
        True,
        """<?xml version="1.0" encoding="utf-8"?>
<!-- Gedeelde machineKey voor de webfarm (web-permits01 en 02), anders vervallen de
     ViewState en de forms-cookies bij een wissel van node. -->
<machineKey validationKey="{V}"
            decryptionKey="{V2}"
            validation="HMACSHA256" decryption="AES" />
""",
    ),
    _t(
        "permits-dotnet/Ardenholt.Permits.Web/Web.machinekey.Debug.config",
        "t23_autogen",
        False,
        """<?xml version="1.0" encoding="utf-8"?>
<!-- Debug: laat IIS Express zelf sleutels genereren. -->
<machineKey validationKey="{V}"
            decryptionKey="{V2}"
            validation="HMACSHA256" decryption="AES" />
""",
    ),
    _t(
        "permits-dotnet/Ardenholt.Permits.Api/appsettings.Production.json",
        "t23_azure_secret",
        True,
        """{
  "Logging": {
    "LogLevel": {
      "Default": "Information",
      "Microsoft.AspNetCore": "Warning"
    }
  },
  "AzureAd": {
    "Instance": "https://login.microsoftonline.com/",
    "Domain": "ardenholt.nl",
    "TenantId": "b3f1c6e2-55a0-4a8e-9d7b-1f2e3c4d5a6b",
    "ClientId": "4d7e2a10-8c3b-4f6e-a9d2-7b1c0e5f3a84",
    "ClientSecret": "{V}"
  },
  "Vera": {
    "BaseUrl": "https://vera.ardenholt.local/vera/api/",
    "TimeoutSeconds": 30
  },
  "AllowedHosts": "permits-api.ardenholt.nl"
}
""",
    ),
    _t(
        "permits-dotnet/Ardenholt.Permits.Api/appsettings.json",
        "t23_uuid",
        False,
        """{
  "AzureAd": {
    "Instance": "https://login.microsoftonline.com/",
    "Domain": "ardenholt.nl",
    "TenantId": "{V}",
    "ClientId": "{V2}",
    "Audience": "api://{V2}",
    "ClientSecret": ""
  },
  "ApplicationInsights": {
    "ConnectionString": "InstrumentationKey={V3};IngestionEndpoint=https://westeurope-5.in.applicationinsights.azure.com/"
  },
  "AllowedHosts": "*"
}
""",
    ),
    _t(
        "permits-dotnet/Ardenholt.Permits.Api/Properties/launchSettings.json",
        "t23_azurite_key",
        False,
        """{
  "profiles": {
    "Ardenholt.Permits.Api": {
      "commandName": "Project",
      "launchBrowser": true,
      "launchUrl": "swagger",
      "applicationUrl": "https://localhost:7211;http://localhost:5211",
      "environmentVariables": {
        "ASPNETCORE_ENVIRONMENT": "Development",
        "Storage__ConnectionString": "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={V};BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
      }
    }
  }
}
""",
    ),
    _t(
        "permits-dotnet/Ardenholt.Permits.Api/appsettings.Acceptance.json",
        "t23_storage_conn",
        True,
        """{
  "Storage": {
    "ConnectionString": "{V}",
    "Container": "vergunning-bijlagen"
  },
  "Vera": {
    "BaseUrl": "https://vera-acc.ardenholt.local/vera/api/"
  }
}
""",
    ),
    _t(
        "permits-dotnet/Ardenholt.Permits.Api/Services/BijlageService.cs",
        "t23_sas",
        True,
        """using Azure.Storage.Blobs;

namespace Ardenholt.Permits.Api.Services;

/// <summary>
/// Leest bijlagen van aanvragen uit de blob container (read-only SAS, tot eind 2027).
/// </summary>
public sealed class BijlageService
{
    // FIXME: SAS hoort in Key Vault; tijdelijk hier tot de managed identity werkt (OMG-2025-004412)
    private const string ContainerUrl =
        "https://stardenholtdocs.blob.core.windows.net/vergunning-bijlagen?{V}";

    private readonly BlobContainerClient _container = new(new Uri(ContainerUrl));

    public async Task<Stream> OpenAsync(string aanvraagId, string bestand, CancellationToken ct)
    {
        var blob = _container.GetBlobClient($"{aanvraagId}/{bestand}");
        var response = await blob.DownloadStreamingAsync(cancellationToken: ct);
        return response.Value.Content;
    }
}
""",
    ),
    _t(
        "permits-dotnet/Ardenholt.Permits.Tests/BijlageServiceTests.cs",
        "t23_fake",
        False,
        """using Xunit;

namespace Ardenholt.Permits.Tests;

public class BijlageServiceTests
{
    private const string FakeSecret = "{V}";

    [Fact]
    public void Options_Reject_Empty_ClientSecret()
    {
        var options = new AzureAdOptions { ClientId = "test-client", ClientSecret = "" };
        Assert.False(options.IsValid());
    }

    [Fact]
    public void Options_Accept_Any_NonEmpty_Secret()
    {
        var options = new AzureAdOptions { ClientId = "test-client", ClientSecret = FakeSecret };
        Assert.True(options.IsValid());
    }
}
""",
    ),
    _t(
        "belasting-asp/includes/conn.asp",
        "t23_weak_pw",
        True,
        """<%
' ============================================================
'  Belastingbalie (klassiek ASP, 2006). Alleen nog gebruikt
'  voor de kwijtscheldingsmodule tot BELIS 4 live is.
' ============================================================
Dim objConn, strConn
strConn = "Provider=SQLOLEDB;Data Source=sql-legacy02;Initial Catalog=Kwijtschelding;User Id=kwijt_web;Password={V};"
Set objConn = Server.CreateObject("ADODB.Connection")
objConn.ConnectionTimeout = 15
objConn.Open strConn

Function SafeSql(s)
    SafeSql = Replace(s, "'", "''")
End Function
%>
""",
    ),
    _t(
        "belasting-asp/global.asa",
        "t23_pw",
        True,
        """<SCRIPT LANGUAGE="VBScript" RUNAT="Server">
Sub Application_OnStart
    Application("ConnStr") = "Provider=SQLOLEDB;Data Source=sql-legacy02;Initial Catalog=Kwijtschelding;User Id=sa;Password={V};"
    Application("MailServer") = "smtp-relay.ardenholt.local"
    Application("Beheerder") = "ict-beheer@ardenholt.nl"
End Sub

Sub Session_OnStart
    Session.Timeout = 20
    Session.LCID = 1043
End Sub
</SCRIPT>
""",
    ),
    _t(
        "belasting-asp/login.asp",
        "t23_i18n",
        False,
        """<!--#include file="includes/conn.asp"-->
<%
Dim melding
If Request.Form("gebruiker") <> "" Then
    If Not CheckLogin(Request.Form("gebruiker"), Request.Form("wachtwoord")) Then
        melding = "{V}"
    End If
End If
%>
<html lang="nl">
<head><title>Kwijtschelding - Inloggen</title></head>
<body>
  <form method="post" action="login.asp">
    <label for="gebruiker">Gebruikersnaam</label>
    <input id="gebruiker" name="gebruiker" type="text">
    <label for="wachtwoord">Wachtwoord</label>
    <input id="wachtwoord" name="wachtwoord" type="password" autocomplete="current-password">
    <p class="fout"><%= melding %></p>
    <button type="submit">Inloggen</button>
  </form>
</body>
</html>
""",
    ),
    _t(
        "permits-dotnet/deploy/iis-apppool.ps1",
        "t23_pw",
        True,
        """#Requires -Modules WebAdministration
<#
  Zet de identiteit van de app pools van Permits op het serviceaccount (na wachtwoordwissel).
  Uitvoeren op web-permits01 en web-permits02.
#>
param(
    [string]$Account = 'ARDENHOLT\\svc_permits'
)

$password = '{V}'
foreach ($pool in 'PermitsWeb', 'PermitsApi') {
    Set-ItemProperty "IIS:\\AppPools\\$pool" -Name processModel -Value @{
        userName     = $Account
        password     = $password
        identitytype = 3
    }
    Restart-WebAppPool -Name $pool
    Write-Host "App pool $pool bijgewerkt"
}
""",
    ),
    _t(
        "permits-dotnet/deploy/iis-apppool-vault.ps1",
        "t23_ref_ps",
        False,
        """#Requires -Modules WebAdministration, Microsoft.PowerShell.SecretManagement
param(
    [string]$Account = 'ARDENHOLT\\svc_permits'
)

$password = {V}
foreach ($pool in 'PermitsWeb', 'PermitsApi') {
    Set-ItemProperty "IIS:\\AppPools\\$pool" -Name processModel -Value @{
        userName     = $Account
        password     = $password
        identitytype = 3
    }
}
""",
    ),
    _t(
        "permits-dotnet/deploy/cert-binding.ps1",
        "t23_thumbprint",
        False,
        """# Koppel het nieuwe PKIoverheid-certificaat aan de HTTPS-binding van permits.ardenholt.nl
$thumbprint = '{V}'
$oldThumbprint = '{V2}'

Import-Module WebAdministration
$binding = Get-WebBinding -Name 'Permits' -Protocol https
$binding.AddSslCertificate($thumbprint, 'My')
Get-ChildItem Cert:\\LocalMachine\\My\\$oldThumbprint | Remove-Item -WhatIf
""",
    ),
]

# ---------------------------------------------------------------------------------------------
# GIS: ArcGIS Enterprise / Online, GeoServer, QGIS plugins in Python, PostGIS
# ---------------------------------------------------------------------------------------------
TEMPLATES += [
    _t(
        "gis-scripts/arcgis/publish_bomenkaart.py",
        "t23_pw",
        True,
        """\"\"\"Publiceert de bomenkaart (BGT + bomenregister) naar ArcGIS Enterprise.

Draait 's nachts vanuit Taakplanner op gis-etl01 als ARDENHOLT\\\\svc_gis.
\"\"\"

from arcgis.gis import GIS
from arcgis.features import FeatureLayerCollection

PORTAL = "https://gis.ardenholt.nl/portal"
ITEM_ID = "3f8a2c91d4e64b0b9a7c55e1f02d6b38"

gis = GIS(PORTAL, "svc_gis_publisher", "{V}", verify_cert=False)

item = gis.content.get(ITEM_ID)
flc = FeatureLayerCollection.fromitem(item)
result = flc.manager.overwrite(r"D:\\GIS\\export\\bomen_actueel.zip")
print("overwrite:", result)
""",
    ),
    _t(
        "gis-scripts/arcgis/publish_bomenkaart_v2.py",
        "t23_arcgis_item",
        False,
        """\"\"\"Versie 2: gebruikt het ingelogde Windows-profiel (IWA) i.p.v. een wachtwoord.\"\"\"

from arcgis.gis import GIS
from arcgis.features import FeatureLayerCollection

PORTAL = "https://gis.ardenholt.nl/portal"
ITEM_ID = "{V}"
BASEMAP_ID = "{V2}"

gis = GIS(PORTAL, use_gen_token=True)
item = gis.content.get(ITEM_ID)
flc = FeatureLayerCollection.fromitem(item)
flc.manager.overwrite(r"D:\\GIS\\export\\bomen_actueel.zip")
webmap = gis.content.get(BASEMAP_ID)
print("Bijgewerkt:", item.title, "in", webmap.title)
""",
    ),
    _t(
        "gis-viewer/src/config/arcgis.ts",
        "t23_arcgis_key",
        True,
        """// Configuratie van de publieke kaartviewer (kaart.ardenholt.nl).
// De API key is gescoped op basemaps + geocoding; rate limit via ArcGIS Location Platform.
import esriConfig from "@arcgis/core/config";

export const ARCGIS_API_KEY = "{V}";

export function configureArcgis(): void {
  esriConfig.apiKey = ARCGIS_API_KEY;
  esriConfig.portalUrl = "https://gis.ardenholt.nl/portal";
  esriConfig.request.timeout = 20000;
}

export const LAYERS = {
  bomen: "https://gis.ardenholt.nl/server/rest/services/Hosted/Bomen/FeatureServer/0",
  speelplekken: "https://gis.ardenholt.nl/server/rest/services/Hosted/Speelplekken/FeatureServer/0",
  afvalcontainers: "https://gis.ardenholt.nl/server/rest/services/Afval/MapServer/2",
};
""",
    ),
    _t(
        "gis-viewer/src/config/webmaps.ts",
        "t23_arcgis_item",
        False,
        """// ArcGIS portal item ids of the public webmaps (not secret: visible in every share URL).
export const WEBMAPS = {
  bomen: "{V}",
  parkeren: "{V2}",
  evenementen: "{V3}",
} as const;

export const DEFAULT_WEBMAP = WEBMAPS.bomen;
""",
    ),
    _t(
        "gis-viewer/.env.production",
        "t23_mapbox_sk",
        True,
        """VITE_PORTAL_URL=https://gis.ardenholt.nl/portal
VITE_MAPBOX_STYLE=mapbox://styles/ardenholt-gis/clp0b3kqr00ab01qx4n2c5d7e
# Secret token met styles:write -- alleen voor het upload-script, NIET in de viewer bundlen
MAPBOX_UPLOAD_TOKEN={V}
VITE_ANALYTICS_SITE=kaart.ardenholt.nl
""",
    ),
    _t(
        "gis-scripts/arcgis/generate_token.http",
        "t23_arcgis_token",
        True,
        """### Token ophalen bij ArcGIS Server (gis-srv01), geldig 14 dagen
POST https://gis.ardenholt.nl/server/tokens/generateToken
Content-Type: application/x-www-form-urlencoded

username=svc_gis&password={{gis_password}}&client=requestip&expiration=20160&f=json

### Layer query met token (resultaat van hierboven; 03-12 gegenereerd)
GET https://gis.ardenholt.nl/server/rest/services/Kabels/MapServer/0/query?where=1%3D1&outFields=*&f=json&token={V}
""",
    ),
    _t(
        "geoserver-data/security/usergroup/default/users.xml",
        "t23_digest1",
        False,
        """<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<userRegistry xmlns="http://www.geoserver.org/security/users" version="1.0">
<users>
<user enabled="true" name="admin" password="{V}"/>
<user enabled="true" name="wfs_publiek" password="{V2}"/>
<user enabled="true" name="etl_pdok" password="{V3}"/>
</users>
<groups/>
</userRegistry>
""",
    ),
    _t(
        "geoserver-docker/docker-compose.yml",
        "t23_app_default_pw",
        True,
        """# GeoServer voor de interne kaartdiensten (gis-geo01). Leverancier: GeoCat handover 2022.
services:
  geoserver:
    image: docker.osgeo.org/geoserver:2.24.2
    restart: unless-stopped
    ports:
      - "8080:8080"
    environment:
      INSTALL_EXTENSIONS: "true"
      STABLE_EXTENSIONS: "wps,importer,css"
      GEOSERVER_ADMIN_USER: admin
      GEOSERVER_ADMIN_PASSWORD: {V}
      CORS_ENABLED: "true"
      CORS_ALLOWED_ORIGINS: "https://kaart.ardenholt.nl"
    volumes:
      - /srv/geoserver/data:/opt/geoserver_data
  postgis:
    image: postgis/postgis:16-3.4
    restart: unless-stopped
    environment:
      POSTGRES_DB: gisdata
      POSTGRES_USER: gis
      POSTGRES_PASSWORD_FILE: /run/secrets/pg_gis
    secrets:
      - pg_gis
secrets:
  pg_gis:
    file: ./secrets/pg_gis.txt
""",
    ),
    _t(
        "geoserver-data/workspaces/ardh/bgt_postgis/datastore.xml",
        "t23_pw",
        True,
        """<dataStore>
  <id>DataStoreInfoImpl--3c1e7f2a:18f0b2d41c7:-7ffe</id>
  <name>bgt_postgis</name>
  <type>PostGIS</type>
  <enabled>true</enabled>
  <workspace>
    <id>WorkspaceInfoImpl--3c1e7f2a:18f0b2d41c7:-7fff</id>
  </workspace>
  <connectionParameters>
    <entry key="schema">bgt</entry>
    <entry key="Evictor run periodicity">300</entry>
    <entry key="Max open prepared statements">50</entry>
    <entry key="encode functions">true</entry>
    <entry key="database">gisdata</entry>
    <entry key="port">5432</entry>
    <entry key="passwd">plain:{V}</entry>
    <entry key="dbtype">postgis</entry>
    <entry key="host">pg-gis01.ardenholt.local</entry>
    <entry key="validate connections">true</entry>
    <entry key="max connections">20</entry>
    <entry key="user">geoserver_ro</entry>
    <entry key="min connections">2</entry>
    <entry key="Expose primary keys">true</entry>
  </connectionParameters>
  <__default>false</__default>
</dataStore>
""",
    ),
    _t(
        "gis-scripts/geoserver/reload_catalog.sh",
        "t23_app_default_pw",
        True,
        """#!/bin/sh
# Herlaad de GeoServer catalogus na een nachtelijke BGT-update (cron op gis-geo01)
GS=http://gis-geo01.ardenholt.local:8080/geoserver
curl -fsS -u admin:{V} -X POST "$GS/rest/reload" && echo "catalogus herladen"
curl -fsS -u admin:{V} "$GS/rest/about/status.json" | jq '.statuses.status[] | select(.isAvailable==false) | .name'
""",
    ),
    _t(
        "gis-scripts/geoserver/reload_catalog_v2.sh",
        "t23_ref_sh",
        False,
        """#!/bin/sh
# v2: wachtwoord uit /run/secrets (docker secret) of de omgeving
GS=http://gis-geo01.ardenholt.local:8080/geoserver
GS_PASS={V}
curl -fsS -u "admin:$GS_PASS" -X POST "$GS/rest/reload" && echo "catalogus herladen"
""",
    ),
    _t(
        "qgis-plugins/ardh_meldingen/meldingen_api.py",
        "t23_ref_py",
        False,
        """# -*- coding: utf-8 -*-
\"\"\"QGIS plugin "Ardenholt Meldingen": laadt meldingen openbare ruimte als laag.\"\"\"

import json
import os

from qgis.core import QgsApplication, QgsAuthMethodConfig, QgsSettings
from qgis.PyQt.QtNetwork import QNetworkRequest
from qgis.PyQt.QtCore import QUrl

API = "https://meldingen.ardenholt.local/api/v2/meldingen"


def api_token():
    \"\"\"Token komt uit de omgeving of uit de QGIS authenticatiedatabase.\"\"\"
    return {V}


def request_meldingen(bbox):
    req = QNetworkRequest(QUrl(API + "?bbox=" + ",".join(str(c) for c in bbox)))
    req.setRawHeader(b"Authorization", ("Token " + api_token()).encode())
    return req
""",
    ),
    _t(
        "qgis-plugins/ardh_meldingen/meldingen_api_dev.py",
        "t23_hex32",
        True,
        """# -*- coding: utf-8 -*-
\"\"\"Ontwikkelversie van de meldingen-API client (alleen op de laptop van de GIS-specialist).\"\"\"

from qgis.PyQt.QtNetwork import QNetworkRequest
from qgis.PyQt.QtCore import QUrl

API = "https://meldingen.ardenholt.local/api/v2/meldingen"
# token van de service user 'qgis-plugin' (aangemaakt door Leverancier Stadsbeheer BV)
API_TOKEN = "{V}"


def request_meldingen(bbox):
    req = QNetworkRequest(QUrl(API + "?bbox=" + ",".join(str(c) for c in bbox)))
    req.setRawHeader(b"Authorization", ("Token " + API_TOKEN).encode())
    return req
""",
    ),
    _t(
        "qgis-plugins/ardh_meldingen/layers.py",
        "t23_authcfg",
        False,
        """# -*- coding: utf-8 -*-
from qgis.core import QgsDataSourceUri, QgsVectorLayer

# authcfg ids verwijzen naar de versleutelde QGIS-authenticatiedatabase van de gebruiker
AUTHCFG_POSTGIS = "{V}"
AUTHCFG_WFS = "{V2}"


def bgt_layer(table):
    uri = QgsDataSourceUri()
    uri.setConnection("pg-gis01.ardenholt.local", "5432", "gisdata", None, None,
                      QgsDataSourceUri.SslPrefer, AUTHCFG_POSTGIS)
    uri.setDataSource("bgt", table, "geom")
    return QgsVectorLayer(uri.uri(False), table, "postgres")


def wfs_layer(typename):
    url = ("https://gis.ardenholt.nl/geoserver/wfs?service=WFS&version=2.0.0"
           f"&typename={typename}&authcfg={AUTHCFG_WFS}")
    return QgsVectorLayer(url, typename, "WFS")
""",
    ),
    _t(
        "qgis-plugins/ardh_meldingen/test/test_layers.py",
        "t23_fake",
        False,
        """# -*- coding: utf-8 -*-
import unittest
from unittest import mock

from ardh_meldingen import meldingen_api


class MeldingenApiTest(unittest.TestCase):
    @mock.patch.dict("os.environ", {"MELDINGEN_TOKEN": "{V}"})
    def test_header_uses_env_token(self):
        with mock.patch.object(meldingen_api, "api_token", return_value="{V}"):
            req = meldingen_api.request_meldingen((180000, 440000, 181000, 441000))
        self.assertIn(b"Token", bytes(req.rawHeader(b"Authorization")))


if __name__ == "__main__":
    unittest.main()
""",
    ),
    _t(
        "gis-etl/pg_service.conf",
        "t23_pw",
        True,
        """# ~/.pg_service.conf van svc_gis op gis-etl01 (FME + ogr2ogr batches)
[gisdata]
host=pg-gis01.ardenholt.local
port=5432
dbname=gisdata
user=etl_writer
password={V}
sslmode=require

[gisdata_ro]
host=pg-gis01.ardenholt.local
port=5432
dbname=gisdata
user=viewer
sslmode=require
""",
    ),
    _t(
        "gis-etl/.pgpass",
        "t23_url_pw",
        True,
        """# hostname:port:database:username:password
pg-gis01.ardenholt.local:5432:gisdata:etl_writer:{V}
pg-gis01.ardenholt.local:5432:*:postgres:{V2}
""",
    ),
    _t(
        "gis-etl/load_bag.sh",
        "t23_url_pw",
        True,
        """#!/bin/bash
# Maandelijkse BAG-load (Kadaster extract) naar PostGIS
set -euo pipefail
EXTRACT=/data/bag/bag-light-$(date +%Y%m).gpkg
ogr2ogr -f PostgreSQL \\
  "PG:host=pg-gis01.ardenholt.local dbname=gisdata user=etl_writer password={V}" \\
  "$EXTRACT" -lco SCHEMA=bag -lco OVERWRITE=YES -nlt PROMOTE_TO_MULTI --config PG_USE_COPY YES
psql "postgresql://etl_writer:{V}@pg-gis01.ardenholt.local:5432/gisdata" -c "ANALYZE bag.pand;"
""",
    ),
    _t(
        "gis-etl/load_bag_ci.sh",
        "t23_ref_sh",
        False,
        """#!/bin/bash
set -euo pipefail
: "${PGHOST:=pg-gis01.ardenholt.local}"
export PGPASSWORD={V}
ogr2ogr -f PostgreSQL "PG:host=$PGHOST dbname=gisdata user=etl_writer" \\
  /data/bag/bag-light.gpkg -lco SCHEMA=bag -lco OVERWRITE=YES
""",
    ),
    _t(
        "gis-etl/sql/roles.sql",
        "t23_bcrypt",
        False,
        """-- Rollen PostGIS (pg-gis01). Wachtwoorden zelf staan in de kluis; hier alleen de
-- hashes van de viewer-app-gebruikers (tabel app.gebruiker, pgcrypto crypt()).
INSERT INTO app.gebruiker (login, wachtwoord_hash, rol) VALUES
  ('viewer-gis', '{V}', 'viewer'),
  ('gisbeheer', '{V2}', 'beheer')
ON CONFLICT (login) DO UPDATE SET wachtwoord_hash = EXCLUDED.wachtwoord_hash;
""",
    ),
    _t(
        "gis-etl/sql/roles_pg.sql",
        "t23_pw",
        True,
        """-- Rollen PostGIS (pg-gis01), door de leverancier aangemaakt bij oplevering.
CREATE ROLE etl_writer LOGIN PASSWORD '{V}';
CREATE ROLE geoserver_ro LOGIN PASSWORD '{V2}';
GRANT USAGE ON SCHEMA bgt, bag TO geoserver_ro;
GRANT SELECT ON ALL TABLES IN SCHEMA bgt, bag TO geoserver_ro;
GRANT ALL ON SCHEMA bgt, bag TO etl_writer;
""",
    ),
    _t(
        "gis-docs/de/GeoServer-Betrieb.md",
        "t23_doc_pw",
        False,
        """# GeoServer Betriebshandbuch (Stadtwerke-Kooperation Ardenholt/Kleve)

## REST-Beispiele

Die folgenden Beispiele verwenden den Testserver aus der GeoServer-Dokumentation:

```bash
curl -u admin:{V} -X GET http://geoserver.example.com/geoserver/rest/workspaces.json
```

Für unsere Instanz das Kennwort aus dem Passwortsafe (Ordner *GIS / GeoServer*) verwenden,
niemals in Skripte schreiben.

## Neustart

`docker compose restart geoserver` auf gis-geo01; danach Layer-Vorschau prüfen.
""",
    ),
]

# ---------------------------------------------------------------------------------------------
# Library (Koha, Perl) and schools (Moodle)
# ---------------------------------------------------------------------------------------------
TEMPLATES += [
    _t(
        "koha-bibliotheek/etc/koha-conf.xml",
        "t23_pw",
        True,
        """<yazgfs>
<!-- Koha instance "bibliotheek" (Bibliotheek Ardenholt & Omstreken), koha01 -->
<listen id="biblioserver">unix:/var/run/koha/bibliotheek/bibliosocket</listen>
<listen id="authorityserver">unix:/var/run/koha/bibliotheek/authoritysocket</listen>

<config>
 <db_scheme>mysql</db_scheme>
 <database>koha_bibliotheek</database>
 <hostname>db-koha01.ardenholt.local</hostname>
 <port>3306</port>
 <user>koha_bibliotheek</user>
 <pass>{V}</pass>
 <tls>no</tls>
 <zebra_max_record_size>1024</zebra_max_record_size>
 <log4perl_conf>/etc/koha/sites/bibliotheek/log4perl.conf</log4perl_conf>
 <memcached_servers>127.0.0.1:11211</memcached_servers>
 <memcached_namespace>koha_bibliotheek</memcached_namespace>
 <template_cache_dir>/var/cache/koha/bibliotheek/templates</template_cache_dir>
 <api_secret_passphrase>{V2}</api_secret_passphrase>
 <encryption_key>{V3}</encryption_key>
 <timezone>Europe/Amsterdam</timezone>
</config>
</yazgfs>
""",
    ),
    _t(
        "koha-bibliotheek/etc/koha-conf.xml.in",
        "t23_placeholder",
        False,
        """<yazgfs>
<config>
 <db_scheme>mysql</db_scheme>
 <database>__DB_NAME__</database>
 <hostname>__DB_HOST__</hostname>
 <user>__DB_USER__</user>
 <pass>{V}</pass>
 <api_secret_passphrase>{V2}</api_secret_passphrase>
 <encryption_key>__ENCRYPTION_KEY__</encryption_key>
</config>
</yazgfs>
""",
    ),
    _t(
        "koha-bibliotheek/plugins/Koha/Plugin/Nl/Ardenholt/Betalen.pm",
        "t23_hex32",
        True,
        """package Koha::Plugin::Nl::Ardenholt::Betalen;

# Online betalen van boetes en abonnementen via de betaalprovider van de gemeente.

use Modern::Perl;
use base qw(Koha::Plugins::Base);
use LWP::UserAgent;
use JSON qw(encode_json decode_json);

our $VERSION = '1.4.2';
our $metadata = {
    name    => 'Ardenholt Betalen',
    author  => 'ICT-beheer Gemeente Ardenholt',
    version => $VERSION,
};

my $API_URL = 'https://api.betaal.ardenholt.nl/v1/payments';
my $API_KEY = '{V}';   # TODO: naar plugin-configuratie (store_data)

sub create_payment {
    my ( $self, $args ) = @_;
    my $ua  = LWP::UserAgent->new( timeout => 15 );
    my $res = $ua->post(
        $API_URL,
        'Authorization' => "Bearer $API_KEY",
        'Content-Type'  => 'application/json',
        Content         => encode_json( { amount => $args->{amount}, description => $args->{description} } ),
    );
    die "Betaling mislukt: " . $res->status_line unless $res->is_success;
    return decode_json( $res->decoded_content );
}

1;
""",
    ),
    _t(
        "koha-bibliotheek/plugins/Koha/Plugin/Nl/Ardenholt/Betalen/configure.tt",
        "t23_i18n",
        False,
        """[% INCLUDE 'doc-head-open.inc' %]
<title>Ardenholt Betalen: configuratie</title>
[% INCLUDE 'doc-head-close.inc' %]
<body>
<h3>Configuratie betaalkoppeling</h3>
<form method="post">
  <input type="hidden" name="class" value="[% CLASS %]"/>
  <input type="hidden" name="method" value="[% METHOD %]"/>
  <label for="api_key">API-sleutel</label>
  <input type="password" id="api_key" name="api_key" value="[% api_key | html %]"
         placeholder="[% t('{V}') %]"/>
  <input type="submit" value="Opslaan"/>
</form>
</body>
""",
    ),
    _t(
        "koha-bibliotheek/misc/cronjobs/sip_selfcheck.pl",
        "t23_weak_pw",
        True,
        """#!/usr/bin/perl
# Controleert elke 5 minuten of de SIP2-zelfbedieningsautomaten kunnen inloggen.
use Modern::Perl;
use IO::Socket::INET;

my %automaten = (
    'vestiging-centrum' => '10.40.12.21',
    'vestiging-noord'   => '10.40.14.21',
);
my $sip_user = 'sip_selfcheck';
my $sip_pass = '{V}';

for my $naam ( sort keys %automaten ) {
    my $sock = IO::Socket::INET->new( PeerAddr => 'koha01.ardenholt.local', PeerPort => 6001, Timeout => 5 )
      or do { warn "$naam: geen verbinding\\n"; next };
    print $sock "9300CN$sip_user|CO$sip_pass|CPBIB-$naam|\\r";
    my $antwoord = <$sock>;
    warn "$naam: login geweigerd\\n" unless $antwoord && $antwoord =~ /^941/;
    close $sock;
}
""",
    ),
    _t(
        "koha-bibliotheek/etc/SIPconfig.xml",
        "t23_pw",
        True,
        """<acsconfig xmlns="http://openncip.org/acs-config/1.0/">
<error-detect enabled="true" />
<server-params min_servers='1' min_spare_servers='0' />
<listeners>
  <service port="6001/tcp" transport="RAW" protocol="SIP/2.00" timeout="60" />
</listeners>
<accounts>
  <login id="sip_selfcheck" password="{V}" delimiter="|" error-detect="enabled" institution="BIB" encoding="utf8" />
  <login id="sip_rfid_poort" password="{V2}" delimiter="|" institution="BIB" />
</accounts>
<institutions>
  <institution id="BIB" implementation="ILS" parms="">
    <policy checkin="true" renewal="true" checkout="true" status_update="false" offline="false" timeout="100" retries="5" />
  </institution>
</institutions>
</acsconfig>
""",
    ),
    _t(
        "koha-bibliotheek/db/borrowers_admin.sql",
        "t23_bcrypt",
        False,
        """-- Beheerders Koha (na reset wachtwoorden, 2025-02). Hashes: Koha::AuthUtils::hash_password (bcrypt)
UPDATE borrowers SET password = '{V}' WHERE userid = 'koha_admin';
UPDATE borrowers SET password = '{V2}' WHERE userid = 'mkowalska';
""",
    ),
    _t(
        "moodle-scholen/config.php",
        "t23_pw",
        True,
        """<?php  // Moodle configuration file -- leerplatform.ardenholt.nl (basisscholen Ardenholt)

unset($CFG);
global $CFG;
$CFG = new stdClass();

$CFG->dbtype    = 'pgsql';
$CFG->dblibrary = 'native';
$CFG->dbhost    = 'pg-moodle01.ardenholt.local';
$CFG->dbname    = 'moodle';
$CFG->dbuser    = 'moodle';
$CFG->dbpass    = '{V}';
$CFG->prefix    = 'mdl_';
$CFG->dboptions = array(
  'dbpersist' => 0,
  'dbport' => 5432,
  'dbsocket' => '',
);

$CFG->wwwroot   = 'https://leerplatform.ardenholt.nl';
$CFG->dataroot  = '/var/moodledata';
$CFG->admin     = 'admin';
$CFG->directorypermissions = 02777;

$CFG->session_handler_class = '\\core\\session\\redis';
$CFG->session_redis_host = 'redis-moodle01.ardenholt.local';
$CFG->session_redis_auth = '{V2}';

require_once(__DIR__ . '/lib/setup.php');
""",
    ),
    _t(
        "moodle-scholen/config-docker.php",
        "t23_ref_php",
        False,
        """<?php
unset($CFG);
global $CFG;
$CFG = new stdClass();
$CFG->dbtype    = 'pgsql';
$CFG->dbhost    = getenv('MOODLE_DB_HOST');
$CFG->dbname    = 'moodle';
$CFG->dbuser    = getenv('MOODLE_DB_USER');
$CFG->dbpass    = {V};
$CFG->prefix    = 'mdl_';
$CFG->wwwroot   = getenv('MOODLE_WWWROOT');
$CFG->dataroot  = '/var/moodledata';
require_once(__DIR__ . '/lib/setup.php');
""",
    ),
    _t(
        "moodle-scholen/local/ardh_sync/classes/task/sync_leerlingen.php",
        "t23_hex32",
        True,
        """<?php
namespace local_ardh_sync\\task;

defined('MOODLE_INTERNAL') || die();

/**
 * Synchroniseert leerlingen uit ParnasSys naar de Moodle-cohorten (elke nacht).
 * Gebruikt de webservice-token van de dienstgebruiker 'sync_parnassys' op de
 * centrale Moodle (leerplatform) om cohorten bij te werken op de schoolinstanties.
 */
class sync_leerlingen extends \\core\\task\\scheduled_task {

    private const WS_URL = 'https://leerplatform.ardenholt.nl/webservice/rest/server.php';
    private const WS_TOKEN = '{V}';

    public function get_name() {
        return get_string('task_sync_leerlingen', 'local_ardh_sync');
    }

    public function execute() {
        $curl = new \\curl();
        $params = [
            'wstoken' => self::WS_TOKEN,
            'wsfunction' => 'core_cohort_add_cohort_members',
            'moodlewsrestformat' => 'json',
        ];
        $response = $curl->post(self::WS_URL . '?' . http_build_query($params), $this->members());
        mtrace('ardh_sync: ' . $response);
    }
}
""",
    ),
    _t(
        "moodle-scholen/local/ardh_sync/lang/pl/local_ardh_sync.php",
        "t23_i18n",
        False,
        """<?php
// Polish strings for local_ardh_sync (szkoła polska "Orzeł" w Ardenholt).
$string['pluginname'] = 'Synchronizacja uczniów Ardenholt';
$string['task_sync_leerlingen'] = 'Synchronizuj uczniów z ParnasSys';
$string['wstoken'] = 'Token usługi sieciowej';
$string['wstoken_desc'] = 'Token użytkownika usługi. Nie udostępniaj go nikomu.';
$string['passwordpolicy'] = '{V}';
$string['syncerror'] = 'Błąd synchronizacji: {$a}';
""",
    ),
    _t(
        "moodle-scholen/scripts/ws_test.sh",
        "t23_hex32",
        True,
        """#!/bin/sh
# Snelle test van de Moodle webservice (core_webservice_get_site_info)
TOKEN={V}
curl -s "https://leerplatform.ardenholt.nl/webservice/rest/server.php?wstoken=$TOKEN&wsfunction=core_webservice_get_site_info&moodlewsrestformat=json" | jq '.sitename, .username'
""",
    ),
    _t(
        "moodle-scholen/docs/webservices.md",
        "t23_doc_token",
        False,
        """# Moodle webservices (leerplatform)

Voorbeeldaanroep uit de handleiding van de leverancier. De token hieronder is een
voorbeeldwaarde op de documentatieserver, niet geldig op ons platform:

```sh
curl "https://moodle.example.com/webservice/rest/server.php?wstoken={V}&wsfunction=core_webservice_get_site_info&moodlewsrestformat=json"
```

Een eigen token vraag je aan via TOPdesk (categorie *Leerplatform > Koppelingen*); tokens
worden uitgegeven per dienstgebruiker en per school.
""",
    ),
]

# ---------------------------------------------------------------------------------------------
# Traffic and utility SCADA: Node-RED, MQTT/Mosquitto, Modbus gateways, Windows services
# ---------------------------------------------------------------------------------------------
TEMPLATES += [
    _t(
        "scada-nodered/settings.js",
        "t23_nodered_secret",
        True,
        """/**
 * Node-RED settings -- verkeersregelinstallaties (VRI) en gemalen, host scada-nr01.
 * Beheer: Team Openbare Ruimte / leverancier Vialis (VRI) en Hydroflex (gemalen).
 */
module.exports = {
    flowFile: 'flows_scada-nr01.json',
    credentialSecret: "{V}",
    uiPort: process.env.PORT || 1880,
    mqttReconnectTime: 15000,
    serialReconnectTime: 15000,
    debugMaxLength: 1000,
    adminAuth: {
        type: "credentials",
        users: [{
            username: "beheer",
            password: "{V2}",
            permissions: "*"
        }]
    },
    functionGlobalContext: {
        os: require('os'),
    },
    logging: {
        console: { level: "info", metrics: false, audit: true }
    },
    editorTheme: { projects: { enabled: false } }
};
""",
    ),
    _t(
        "scada-nodered/settings.prd.js",
        "t23_bcrypt",
        False,
        """module.exports = {
    flowFile: 'flows_scada-nr01.json',
    credentialSecret: process.env.NODE_RED_CREDENTIAL_SECRET,
    adminAuth: {
        type: "credentials",
        users: [{
            username: "beheer",
            password: "{V}",
            permissions: "*"
        }, {
            username: "vialis",
            password: "{V2}",
            permissions: "read"
        }]
    },
    httpNodeAuth: { user: "dashboard", pass: "{V3}" },
};
""",
    ),
    _t(
        "scada-nodered/flows_scada-nr01_cred.json",
        "t23_nodered_enc",
        False,
        """{
    "$": "{V}"
}
""",
    ),
    _t(
        "scada-nodered/flows_scada-nr01.json",
        "t23_mqtt_pw",
        True,
        """[
    {
        "id": "b1f0c2a9.7e3d4",
        "type": "tab",
        "label": "Gemalen",
        "disabled": false,
        "info": "Uitlezen gemalen via Modbus TCP, doorzetten naar MQTT (broker mqtt01)."
    },
    {
        "id": "4e9a1c7d.0b2f8",
        "type": "mqtt-broker",
        "name": "mqtt01",
        "broker": "mqtt01.scada.ardenholt.local",
        "port": "8883",
        "tls": "d31c5e0a.9f7b2",
        "clientid": "scada-nr01",
        "usetls": true,
        "protocolVersion": "5",
        "keepalive": "60",
        "cleansession": true,
        "credentials": {
            "user": "nodered",
            "password": "{V}"
        }
    },
    {
        "id": "7c2e8f01.a4d93",
        "type": "modbus-client",
        "name": "Gemaal Molenweg",
        "clienttype": "tcp",
        "tcpHost": "10.60.3.21",
        "tcpPort": "502",
        "unit_id": "1",
        "clientTimeout": "2000"
    }
]
""",
    ),
    _t(
        "scada-mosquitto/mosquitto.conf",
        "t23_mqtt_pw",
        True,
        """# Mosquitto op mqtt01.scada (VLAN 60). Bridge naar de cloud-broker van Hydroflex.
per_listener_settings true

listener 8883
cafile /etc/mosquitto/ca/ardh-scada-ca.crt
certfile /etc/mosquitto/certs/mqtt01.crt
keyfile /etc/mosquitto/certs/mqtt01.key
require_certificate false
password_file /etc/mosquitto/passwd
acl_file /etc/mosquitto/acl

connection hydroflex-cloud
address mqtt.hydroflex.eu:8883
bridge_protocol_version mqttv311
remote_clientid ardenholt-gemalen
remote_username ardenholt
remote_password {V}
topic gemalen/# out 1 ardenholt/ ""
bridge_cafile /etc/ssl/certs/ca-certificates.crt
""",
    ),
    _t(
        "scada-mosquitto/passwd",
        "t23_mosquitto_hash",
        False,
        """nodered:{V}
vialis-vri:{V2}
grafana:{V3}
""",
    ),
    _t(
        "scada-gateway/modbus2mqtt/config.yaml",
        "t23_mqtt_pw",
        True,
        """# modbus2mqtt gateway (Raspberry Pi CM4 in gemaal Zuidkade)
mqtt:
  host: mqtt01.scada.ardenholt.local
  port: 8883
  tls: true
  username: gw-zuidkade
  password: "{V}"
  topic_prefix: gemalen/zuidkade
modbus:
  - name: pomp1
    host: 10.60.5.11
    port: 502
    unit: 1
    poll_interval: 5
    registers:
      - { name: debiet, address: 30001, type: input, scale: 0.1 }
      - { name: niveau, address: 30003, type: input, scale: 0.01 }
      - { name: storing, address: 10001, type: discrete }
""",
    ),
    _t(
        "scada-gateway/modbus2mqtt/config.example.yaml",
        "t23_placeholder",
        False,
        """mqtt:
  host: mqtt01.scada.ardenholt.local
  port: 8883
  tls: true
  username: gw-<locatie>
  password: "{V}"
  topic_prefix: gemalen/<locatie>
modbus:
  - name: pomp1
    host: 10.60.x.11
    port: 502
    unit: 1
""",
    ),
    _t(
        "scada-gateway/modbus2mqtt/gateway.py",
        "t23_ref_py",
        False,
        """\"\"\"modbus2mqtt: polls Modbus TCP registers and publishes them to MQTT.\"\"\"

import os
import time

import paho.mqtt.client as mqtt
import yaml
from pymodbus.client import ModbusTcpClient

CONFIG = yaml.safe_load(open(os.environ.get("GATEWAY_CONFIG", "/etc/modbus2mqtt/config.yaml")))


def connect_mqtt(cfg):
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cfg["username"])
    client.username_pw_set(cfg["username"], password=cfg.get("password") or {V})
    if cfg.get("tls"):
        client.tls_set()
    client.connect(cfg["host"], cfg["port"], keepalive=60)
    return client


def poll_forever():
    mq = connect_mqtt(CONFIG["mqtt"])
    while True:
        for dev in CONFIG["modbus"]:
            with ModbusTcpClient(dev["host"], port=dev["port"]) as mb:
                for reg in dev["registers"]:
                    rr = mb.read_input_registers(reg["address"] - 30001, count=1, slave=dev["unit"])
                    value = rr.registers[0] * reg.get("scale", 1)
                    mq.publish(f"{CONFIG['mqtt']['topic_prefix']}/{dev['name']}/{reg['name']}", value)
        time.sleep(CONFIG["modbus"][0].get("poll_interval", 5))
""",
    ),
    _t(
        "scada-vri/VriMonitorService/App.config",
        "t23_pw",
        True,
        """<?xml version="1.0" encoding="utf-8"?>
<!-- Windows-service "VRI Monitor" op scada-app02: leest storingen uit de VRI-centrale (Vialis
     ImFlow) en zet ze als melding in TOPdesk. -->
<configuration>
  <appSettings>
    <add key="ImFlowUrl" value="https://imflow.vri.ardenholt.local/api/v1/" />
    <add key="ImFlowUser" value="vri-monitor" />
    <add key="ImFlowPassword" value="{V}" />
    <add key="TopdeskUrl" value="https://ardenholt.topdesk.net/tas/api/" />
    <add key="TopdeskUser" value="api_vri" />
    <add key="TopdeskAppPassword" value="{V2}" />
    <add key="PollSeconds" value="60" />
  </appSettings>
  <startup>
    <supportedRuntime version="v4.0" sku=".NETFramework,Version=v4.8" />
  </startup>
</configuration>
""",
    ),
    _t(
        "scada-vri/VriMonitorService/install-service.ps1",
        "t23_pw",
        True,
        """# Installeert de VRI Monitor service onder het serviceaccount (op scada-app02, als admin)
$svcName = 'VriMonitor'
$binPath = 'C:\\Program Files\\Ardenholt\\VriMonitor\\VriMonitorService.exe'

New-Service -Name $svcName -BinaryPathName $binPath -DisplayName 'VRI Monitor' -StartupType Automatic
sc.exe config $svcName obj= 'SCADA\\svc_vrimon' password= '{V}'
sc.exe failure $svcName reset= 86400 actions= restart/60000/restart/60000//
Start-Service $svcName
""",
    ),
    _t(
        "scada-vri/VriMonitorService/App.Release.config",
        "t23_dpapi",
        False,
        """<?xml version="1.0" encoding="utf-8"?>
<!-- Wachtwoorden zijn per machine versleuteld met DPAPI (ConvertFrom-SecureString) door
     het installatiescript; alleen leesbaar voor SCADA\\svc_vrimon op scada-app02. -->
<configuration xmlns:xdt="http://schemas.microsoft.com/XML-Document-Transform">
  <appSettings>
    <add key="ImFlowPassword" value="{V}" xdt:Transform="SetAttributes" xdt:Locator="Match(key)" />
    <add key="TopdeskAppPassword" value="{V2}" xdt:Transform="SetAttributes" xdt:Locator="Match(key)" />
  </appSettings>
</configuration>
""",
    ),
    _t(
        "scada-vri/docs/overdracht-vialis.md",
        "t23_default_pw",
        True,
        """# Overdracht VRI-centrale (Vialis) -- 14 november

Aanwezig: R. Jansen (Vialis), P. Nowak (ICT-beheer), S. de Boer (Verkeer).

## Toegang

- ImFlow centrale: https://imflow.vri.ardenholt.local, accounts via AD-groep `GG-VRI-Beheer`.
- De veldkasten (Siemens C800) hebben nog het fabriekswachtwoord op de lokale webinterface:
  gebruiker `admin`, wachtwoord `{V}`. Vialis past dit aan bij het onderhoud in Q1
  (actiepunt Vialis-17).
- 4G-routers in de kasten (Teltonika RUT955) zijn al voorzien van unieke wachtwoorden, die
  staan in de kluis onder *SCADA / VRI / Routers*.

## Openstaande punten

1. Firewallregels VLAN 60 -> VLAN 62 documenteren.
2. Monitoring via SNMP naar LibreNMS (community staat in de kluis).
""",
    ),
    _t(
        "scada-vri/docs/uebergabe-hydroflex.md",
        "t23_redacted",
        False,
        """# Übergabeprotokoll Pumpwerke (Hydroflex GmbH) -- Stadt Ardenholt

Teilnehmer: K. Vogel (Hydroflex), P. Nowak (ICT-beheer)

## Zugänge

| System                 | Benutzer        | Passwort   |
|------------------------|-----------------|------------|
| Hydroflex-Cloud-Portal | ardenholt-admin | {V}        |
| MQTT-Bridge            | ardenholt       | {V2}       |
| Fernwartung (VPN)      | hf-service      | {V3}       |

Die Zugangsdaten wurden per Einmal-Link übermittelt und liegen im Passwortsafe.
""",
    ),
]

# ---------------------------------------------------------------------------------------------
# Network: Cisco IOS, FortiGate, FreeRADIUS, SNMP, UniFi (public Wi-Fi "Ardenholt-Gratis")
# ---------------------------------------------------------------------------------------------
TEMPLATES += [
    _t(
        "netwerk-configs/cisco/sw-stadhuis-core01.cfg",
        "t23_cisco7",
        True,
        """!
! Last configuration change at 14:02:11 CET Tue Mar 4 2025 by p.nowak
!
version 17.9
service timestamps debug datetime msec localtime
service timestamps log datetime msec localtime
service password-encryption
!
hostname sw-stadhuis-core01
!
boot-start-marker
boot-end-marker
!
username librenms privilege 1 password 7 {V}
!
aaa new-model
aaa authentication login default group radius local
aaa authorization exec default group radius local
!
radius server NPS01
 address ipv4 10.10.1.21 auth-port 1812 acct-port 1813
 key 7 {V2}
!
ip domain name ardenholt.local
ip name-server 10.10.1.11 10.10.1.12
!
interface Vlan10
 description Beheer
 ip address 10.10.0.2 255.255.255.0
!
line vty 0 15
 transport input ssh
!
end
""",
    ),
    _t(
        "netwerk-configs/cisco/sw-bibliotheek01.cfg",
        "t23_cisco_hash",
        False,
        """!
hostname sw-bibliotheek01
!
service password-encryption
enable secret 9 {V}
!
username netadmin privilege 15 secret 9 {V2}
username backup-rancid privilege 15 secret 8 {V3}
!
aaa new-model
aaa authentication login default group radius local
!
interface GigabitEthernet1/0/1
 description Uplink naar stadhuis (glas)
 switchport mode trunk
!
line con 0
 logging synchronous
line vty 0 4
 transport input ssh
!
end
""",
    ),
    _t(
        "netwerk-configs/cisco/rtr-brandweer01.cfg",
        "t23_md5crypt",
        False,
        """!
! Router kazerne Noord (oud, ISR 2901), vervanging gepland Q2
hostname rtr-brandweer01
!
enable secret 5 {V}
!
username cisco privilege 15 secret 5 {V2}
!
interface GigabitEthernet0/0
 description WAN KPN
 ip address dhcp
!
end
""",
    ),
    _t(
        "netwerk-configs/cisco/sw-sporthal-west.cfg",
        "t23_pw",
        True,
        """!
! Switch sporthal West -- nog niet onder RANCID, handmatige backup 02-2025
hostname sw-sporthal-west
!
no service password-encryption
enable password {V}
!
username beheer privilege 15 password 0 {V2}
!
snmp-server location Sporthal West, techniekruimte
snmp-server contact ict-beheer@ardenholt.nl
!
line vty 0 4
 login local
 transport input ssh telnet
!
end
""",
    ),
    _t(
        "netwerk-configs/cisco/snmp-baseline.cfg",
        "t23_snmp_community",
        True,
        """! SNMP baseline voor alle access switches (template, via Ansible ios_config)
snmp-server community {V} RO ACL-SNMP
snmp-server community {V2} RW ACL-SNMP-RW
snmp-server location {{ snmp_location }}
snmp-server contact ict-beheer@ardenholt.nl
snmp-server enable traps snmp linkdown linkup coldstart
snmp-server host 10.10.1.40 version 2c {V}
ip access-list standard ACL-SNMP
 permit 10.10.1.40
 permit 10.10.1.41
""",
    ),
    _t(
        "netwerk-configs/cisco/snmpv3-baseline.cfg",
        "t23_pw",
        True,
        """! SNMPv3 (authPriv) -- vervangt v2c community na audit 2024
snmp-server group ARDH-MON v3 priv read V3READ access ACL-SNMP
snmp-server view V3READ iso included
snmp-server user librenms ARDH-MON v3 auth sha {V} priv aes 128 {V2} access ACL-SNMP
snmp-server host 10.10.1.40 version 3 priv librenms
""",
    ),
    _t(
        "netwerk-configs/cisco/snmp-engineids.txt",
        "t23_snmp_engine",
        False,
        """# SNMPv3 engine IDs (nodig voor LibreNMS bij handmatig toevoegen), 'show snmp engineID'
sw-stadhuis-core01   {V}
sw-bibliotheek01     {V2}
sw-sporthal-west     {V3}
""",
    ),
    _t(
        "netwerk-configs/fortigate/fgt-stadhuis-01_backup.conf",
        "t23_fortigate_enc",
        False,
        """#config-version=FGT100F-7.2.8-FW-build1639-240313:opmode=0:vdom=0:user=p.nowak
#conf_file_ver=84215735417629
#buildno=1639
#global_vdom=1
config system global
    set admin-sport 8443
    set alias "fgt-stadhuis-01"
    set hostname "fgt-stadhuis-01"
    set timezone 28
end
config system admin
    edit "admin"
        set accprofile "super_admin"
        set vdom "root"
        set password {V}
    next
    edit "vialis-ro"
        set accprofile "prof_admin_ro"
        set vdom "root"
        set password {V2}
    next
end
config vpn ipsec phase1-interface
    edit "to-brandweer"
        set interface "wan1"
        set peertype any
        set proposal aes256-sha256
        set remote-gw 145.12.88.21
        set psksecret {V3}
    next
end
""",
    ),
    _t(
        "netwerk-configs/fortigate/ipsec-hydroflex.txt",
        "t23_psk",
        True,
        """IPsec tunnel Hydroflex (fernwartung gemalen) -- opgezet 11-09, ticket INC0051177

Onze kant: fgt-stadhuis-01, wan1, 185.34.77.10
Hydroflex: 91.198.120.44 (Sophos XG)

Phase1: IKEv2, aes256-sha256, DH 14, lifetime 28800
Phase2: 10.60.0.0/16 <-> 172.20.10.0/24, aes256-sha256, PFS 14, lifetime 3600
PSK: {V}

CLI (zo ingevoerd):
config vpn ipsec phase1-interface
    edit "to-hydroflex"
        set interface "wan1"
        set ike-version 2
        set remote-gw 91.198.120.44
        set psksecret {V}
    next
end
""",
    ),
    _t(
        "netwerk-configs/fortigate/fortios_api.py",
        "t23_fortigate_token",
        True,
        """#!/usr/bin/env python3
\"\"\"Exporteert adresobjecten en policies van de FortiGates naar NetBox (nachtelijk).\"\"\"

import requests

FIREWALLS = {
    "fgt-stadhuis-01": "https://10.10.0.1:8443",
    "fgt-werf-01": "https://10.30.0.1:8443",
}
# REST API admin "netbox-sync" (accprofile read-only, trusted host 10.10.1.45)
API_TOKEN = "{V}"


def get(fw_url, path):
    r = requests.get(
        f"{fw_url}/api/v2/{path}",
        headers={"Authorization": f"Bearer {API_TOKEN}"},
        verify="/etc/ssl/certs/ardh-root-ca.pem",
        timeout=20,
    )
    r.raise_for_status()
    return r.json()["results"]


if __name__ == "__main__":
    for name, url in FIREWALLS.items():
        addrs = get(url, "cmdb/firewall/address")
        print(name, len(addrs), "address objects")
""",
    ),
    _t(
        "netwerk-configs/fortigate/fortios_api_vault.py",
        "t23_ref_py",
        False,
        """#!/usr/bin/env python3
import os

import requests

API_TOKEN = {V}


def get(fw_url, path):
    r = requests.get(f"{fw_url}/api/v2/{path}", headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=20)
    r.raise_for_status()
    return r.json()["results"]
""",
    ),
    _t(
        "netwerk-configs/freeradius/clients.conf",
        "t23_radius_secret",
        True,
        """# FreeRADIUS clients -- radius01 (WiFi personeel 802.1X + beheer switches)
client localhost {
	ipaddr = 127.0.0.1
	proto = *
	secret = {V}
	require_message_authenticator = no
	nas_type = other
}

client unifi-controller {
	ipaddr = 10.10.1.60
	secret = {V2}
	shortname = unifi
}

client switches-beheer {
	ipaddr = 10.10.0.0/24
	secret = {V3}
	shortname = switches
	nas_type = cisco
}
""",
    ),
    _t(
        "netwerk-configs/freeradius/mods-available/ldap",
        "t23_pw",
        True,
        """# -*- text -*-
#  LDAP module -- authenticatie WiFi personeel tegen AD (via LDAPS)
ldap {
	server = 'ldaps://dc01.ardenholt.local'
	server = 'ldaps://dc02.ardenholt.local'
	port = 636
	identity = 'CN=svc_radius,OU=Serviceaccounts,DC=ardenholt,DC=local'
	password = {V}
	base_dn = 'DC=ardenholt,DC=local'
	user {
		base_dn = "${..base_dn}"
		filter = "(&(objectClass=user)(sAMAccountName=%{%{Stripped-User-Name}:-%{User-Name}}))"
	}
	tls {
		ca_file = /etc/ssl/certs/ardh-root-ca.pem
		require_cert = 'demand'
	}
}
""",
    ),
    _t(
        "netwerk-configs/freeradius/mods-available/ldap.tpl",
        "t23_ref_ansible",
        False,
        """# Ansible template (role radius) -- wordt gerenderd naar /etc/freeradius/3.0/mods-available/ldap
ldap {
	server = 'ldaps://dc01.ardenholt.local'
	port = 636
	identity = 'CN=svc_radius,OU=Serviceaccounts,DC=ardenholt,DC=local'
	password = "{V}"
	base_dn = 'DC=ardenholt,DC=local'
}
""",
    ),
    _t(
        "netwerk-configs/unifi/site-export-bibliotheek.json",
        "t23_psk",
        True,
        """{
  "site": "bibliotheek",
  "controller": "unifi01.ardenholt.local",
  "exported": "2025-02-10T09:14:22Z",
  "wlanconf": [
    {
      "name": "Ardenholt-Gratis",
      "security": "open",
      "is_guest": true,
      "portal_enabled": true,
      "vlan": 80
    },
    {
      "name": "Ardenholt-Personeel",
      "security": "wpaeap",
      "wpa_mode": "wpa2",
      "radiusprofile": "NPS01",
      "vlan": 20
    },
    {
      "name": "Bieb-Zelfbediening",
      "security": "wpapsk",
      "wpa_mode": "wpa2",
      "x_passphrase": "{V}",
      "vlan": 42,
      "hide_ssid": true
    }
  ],
  "mgmt": {
    "x_ssh_username": "ardh-unifi",
    "x_ssh_password": "{V2}"
  }
}
""",
    ),
    _t(
        "netwerk-configs/unifi/adopt-ap.sh",
        "t23_ap_default_pw",
        True,
        """#!/bin/sh
# Adopteer nieuwe access points (fabrieksinstelling) naar de controller.
# Gebruik: ./adopt-ap.sh 10.80.0.31 10.80.0.32 ...
CONTROLLER=http://unifi01.ardenholt.local:8080/inform
for ip in "$@"; do
  sshpass -p '{V}' ssh -o StrictHostKeyChecking=no ubnt@"$ip" "set-inform $CONTROLLER" \\
    && echo "$ip: set-inform verstuurd"
done
""",
    ),
    _t(
        "netwerk-configs/unifi/known_hosts_aps",
        "t23_ssh_fpr",
        False,
        """# SSH host key fingerprints van de access points (na adoptie, 'ssh-keyscan | ssh-keygen -lf -')
# 256 <fingerprint> <host> (ED25519)
256 {V} ap-bieb-centrum-01 (ED25519)
256 {V2} ap-bieb-centrum-02 (ED25519)
256 {V3} ap-stadhuis-hal-01 (ED25519)
""",
    ),
    _t(
        "netwerk-configs/unifi/macs-gratis-wifi-blocklist.txt",
        "t23_mac",
        False,
        """# Geblokkeerde clients op Ardenholt-Gratis (misbruik, zie INC0049932)
{V}  # 2025-01-14, torrentverkeer
{V2}  # 2025-02-02, portscan
{V3}  # 2025-02-19, spam via SMTP
""",
    ),
    _t(
        "netwerk-configs/docs/gratis-wifi-portal.md",
        "t23_i18n",
        False,
        """# Ardenholt-Gratis: captive portal teksten

| Taal | Sleutel              | Tekst                |
|------|----------------------|----------------------|
| nl   | portal.pw.hint       | {V}                  |
| de   | portal.pw.hint       | {V2}                 |
| pl   | portal.pw.hint       | {V3}                 |

Het gratis netwerk heeft geen wachtwoord; gasten accepteren alleen de voorwaarden.
Vouchers (voor evenementen) worden per dag gegenereerd in de controller.
""",
    ),
    _t(
        "netwerk-configs/librenms/config.php",
        "t23_snmp_community",
        True,
        """<?php
## LibreNMS (nms01) -- lokale config
$config['snmp']['community'] = array('{V}', '{V2}');
$config['snmp']['v3'][0]['authlevel'] = 'authPriv';
$config['snmp']['v3'][0]['authname'] = 'librenms';
$config['snmp']['v3'][0]['authalgo'] = 'SHA';
$config['snmp']['v3'][0]['cryptoalgo'] = 'AES';
$config['nets'][] = '10.10.0.0/24';
$config['nets'][] = '10.60.0.0/16';
$config['discovery_by_ip'] = true;
""",
    ),
]

# ---------------------------------------------------------------------------------------------
# Identity: Active Directory, LDAP, ADFS, Azure AD (Entra ID)
# ---------------------------------------------------------------------------------------------
TEMPLATES += [
    _t(
        "identity/scripts/New-ServiceAccounts.ps1",
        "t23_pw",
        True,
        """<#
.SYNOPSIS
  Maakt de serviceaccounts aan voor de nieuwe omgeving (eenmalig, ICT-beheer 2e lijn).
.NOTES
  Na afloop wachtwoorden in Keeper zetten en dit script uit de share verwijderen!
#>
Import-Module ActiveDirectory

$ou = 'OU=Serviceaccounts,OU=Beheer,DC=ardenholt,DC=local'

$accounts = @(
    @{ Name = 'svc_geoserver'; Description = 'GeoServer LDAP bind'; Password = '{V}' },
    @{ Name = 'svc_koha_ldap'; Description = 'Koha LDAP login';      Password = '{V2}' },
    @{ Name = 'svc_moodle';    Description = 'Moodle LDAP sync';     Password = '{V3}' }
)

foreach ($a in $accounts) {
    New-ADUser -Name $a.Name -SamAccountName $a.Name -Path $ou -Description $a.Description `
        -AccountPassword (ConvertTo-SecureString $a.Password -AsPlainText -Force) `
        -PasswordNeverExpires $true -CannotChangePassword $true -Enabled $true
    Write-Host "Aangemaakt: $($a.Name)"
}
""",
    ),
    _t(
        "identity/scripts/Reset-Password.ps1",
        "t23_weak_pw",
        True,
        """# Helpdesk: wachtwoord resetten voor medewerker (eerste lijn), met verplichte wijziging.
param([Parameter(Mandatory)][string]$SamAccountName)

$tijdelijk = ConvertTo-SecureString '{V}' -AsPlainText -Force
Set-ADAccountPassword -Identity $SamAccountName -Reset -NewPassword $tijdelijk
Set-ADUser -Identity $SamAccountName -ChangePasswordAtLogon $true
Unlock-ADAccount -Identity $SamAccountName
Write-Host "Wachtwoord gereset voor $SamAccountName -- tijdelijk wachtwoord telefonisch doorgeven."
""",
    ),
    _t(
        "identity/scripts/Reset-Password-v2.ps1",
        "t23_ref_ps",
        False,
        """# v2: tijdelijk wachtwoord wordt gegenereerd en via SMS verstuurd (geen vaste waarde meer)
param([Parameter(Mandatory)][string]$SamAccountName)

Add-Type -AssemblyName System.Web
$plain = [System.Web.Security.Membership]::GeneratePassword(16, 3)
$tijdelijk = ConvertTo-SecureString $plain -AsPlainText -Force
Set-ADAccountPassword -Identity $SamAccountName -Reset -NewPassword $tijdelijk
$smsApiKey = {V}
Send-ArdhSms -To (Get-ADUser $SamAccountName -Properties mobile).mobile -Text "Tijdelijk wachtwoord: $plain" -ApiKey $smsApiKey
""",
    ),
    _t(
        "identity/scripts/Export-Credential.ps1",
        "t23_dpapi",
        False,
        """# Opgeslagen credential voor de geplande taak 'AD-export naar TOPdesk' (DPAPI, alleen
# ontsleutelbaar door ARDENHOLT\\svc_topdesk op util01).
$encrypted = '{V}'
$secure = ConvertTo-SecureString $encrypted
$cred = New-Object System.Management.Automation.PSCredential('ARDENHOLT\\svc_topdesk', $secure)
Get-ADUser -Filter 'Enabled -eq $true' -Properties mail, department -Credential $cred |
    Select-Object SamAccountName, mail, department |
    Export-Csv -Path '\\\\util01\\export$\\ad-users.csv' -NoTypeInformation -Encoding UTF8
""",
    ),
    _t(
        "identity/ldap/ldapsearch-examples.sh",
        "t23_pw",
        True,
        """#!/bin/sh
# Handige LDAP-queries (ICT-beheer). Bind met het Koha-serviceaccount.
BIND_DN="CN=svc_koha_ldap,OU=Serviceaccounts,OU=Beheer,DC=ardenholt,DC=local"

# alle leden van de bibliotheekgroep
ldapsearch -H ldaps://dc01.ardenholt.local -D "$BIND_DN" -w '{V}' \\
  -b "DC=ardenholt,DC=local" "(memberOf=CN=GG-Bibliotheek,OU=Groepen,DC=ardenholt,DC=local)" sAMAccountName mail

# vergrendelde accounts
ldapsearch -H ldaps://dc01.ardenholt.local -D "$BIND_DN" -w '{V}' \\
  -b "DC=ardenholt,DC=local" "(lockoutTime>=1)" sAMAccountName lockoutTime
""",
    ),
    _t(
        "identity/ldap/openldap-slapd.ldif",
        "t23_ssha",
        False,
        """# Kleine OpenLDAP voor de schoolnetwerken (Moodle + printers), ldap-scholen01
dn: olcDatabase={1}mdb,cn=config
changetype: modify
replace: olcRootPW
olcRootPW: {V}

dn: cn=moodle-sync,ou=services,dc=scholen,dc=ardenholt,dc=nl
changetype: add
objectClass: simpleSecurityObject
objectClass: organizationalRole
cn: moodle-sync
userPassword: {V2}
""",
    ),
    _t(
        "identity/ldap/moodle-auth-ldap.txt",
        "t23_pw",
        True,
        """Moodle > Site administration > Plugins > Authentication > LDAP server (schermafdruk-tekst)
Host URL:            ldaps://ldap-scholen01.ardenholt.local
Version:             3
Use TLS:             No (LDAPS)
Distinguished name:  cn=moodle-sync,ou=services,dc=scholen,dc=ardenholt,dc=nl
Password:            {V}
User type:           posixAccount (rfc2307)
Contexts:            ou=leerlingen,dc=scholen,dc=ardenholt,dc=nl;ou=leraren,dc=scholen,dc=ardenholt,dc=nl
""",
    ),
    _t(
        "identity/adfs/relying-parties.ps1",
        "t23_thumbprint",
        False,
        """# ADFS relying party trusts (adfs01) -- export voor documentatie
Add-AdfsRelyingPartyTrust -Name 'Moodle Leerplatform' `
    -Identifier 'https://leerplatform.ardenholt.nl/auth/saml2/sp/metadata.php' `
    -MetadataUrl 'https://leerplatform.ardenholt.nl/auth/saml2/sp/metadata.php' `
    -IssuanceAuthorizationRules '@RuleTemplate = "AllowAllAuthzRule" => issue(Type = "http://schemas.microsoft.com/authorization/claims/permit", Value = "true");'

# Token-signing certificaat (rollover 2025): thumbprints oud en nieuw
Set-AdfsCertificate -CertificateType Token-Signing -Thumbprint '{V}' -IsPrimary
Remove-AdfsCertificate -CertificateType Token-Signing -Thumbprint '{V2}'
""",
    ),
    _t(
        "identity/adfs/token-signing-2025.cer.pem",
        "t23_cert",
        False,
        """Token-signing certificate ADFS (adfs.ardenholt.nl), exported 2025-01-08 for the
Moodle and TOPdesk service providers. Public certificate only.

{V}
""",
    ),
    _t(
        "identity/adfs/adfs-svc-gmsa.md",
        "t23_pw",
        True,
        """# ADFS farm: service account

**Status (feb):** ADFS draait nog onder het klassieke account `ARDENHOLT\\svc_adfs` i.p.v. een gMSA.
Migratie naar gMSA staat gepland na de upgrade naar Server 2022.

Tot die tijd:

- Account: `ARDENHOLT\\svc_adfs`
- Wachtwoord: `{V}` (verloopt niet; wijzigen vereist herconfiguratie van beide nodes)
- SPN: `HTTP/adfs.ardenholt.nl`

Bij het toevoegen van een node:

```powershell
Add-AdfsFarmNode -ServiceAccountCredential (Get-Credential ARDENHOLT\\svc_adfs) -PrimaryComputerName adfs01
```
""",
    ),
    _t(
        "identity/entra/app-registrations.md",
        "t23_uuid",
        False,
        """# Entra ID (Azure AD) app registrations -- overzicht

Tenant: `ardenholt.onmicrosoft.com` (tenant id `{V}`)

| App                        | Client id                              | Eigenaar      |
|----------------------------|----------------------------------------|---------------|
| Permits API                | {V2} | Team Vergunningen |
| CKAN open data SSO         | {V3} | Team Data     |

Secrets worden **niet** hier bewaard; ze staan in Key Vault `kv-ardh-prd` en verlopen na
12 maanden (reminder in de Teams-planner "Certificaten & secrets").
""",
    ),
    _t(
        "identity/entra/graph-report.py",
        "t23_azure_secret",
        True,
        """\"\"\"Maandrapport licenties (E3/F3) voor de controller, via Microsoft Graph.\"\"\"

import msal
import requests

TENANT_ID = "8c41f2d7-3e6b-4a90-b1c5-d2e7f0a39b64"
CLIENT_ID = "e0b5a6c3-71d4-4f28-9a3e-5c8d1f72b0a9"
CLIENT_SECRET = "{V}"

app = msal.ConfidentialClientApplication(
    CLIENT_ID,
    authority=f"https://login.microsoftonline.com/{TENANT_ID}",
    client_credential=CLIENT_SECRET,
)
token = app.acquire_token_for_client(scopes=["https://graph.microsoft.com/.default"])
resp = requests.get(
    "https://graph.microsoft.com/v1.0/subscribedSkus",
    headers={"Authorization": f"Bearer {token['access_token']}"},
    timeout=30,
)
for sku in resp.json()["value"]:
    print(sku["skuPartNumber"], sku["consumedUnits"], "/", sku["prepaidUnits"]["enabled"])
""",
    ),
    _t(
        "identity/entra/graph-report.env",
        "t23_kv_ref",
        False,
        """AZURE_TENANT_ID=8c41f2d7-3e6b-4a90-b1c5-d2e7f0a39b64
AZURE_CLIENT_ID=e0b5a6c3-71d4-4f28-9a3e-5c8d1f72b0a9
AZURE_CLIENT_SECRET={V}
REPORT_MAILTO=controller@ardenholt.nl
""",
    ),
    _t(
        "identity/entra/connect-sync-notes.txt",
        "t23_pw",
        True,
        """Entra Connect (aadsync01) -- installatie-notities 2023, van de leverancier

Sync account AD:   ARDENHOLT\\MSOL_2f9c0a1e77b3
  (automatisch aangemaakt door de wizard)
Global admin gebruikt bij installatie: install-admin@ardenholt.onmicrosoft.com
  wachtwoord: {V}
  -> na installatie uitgeschakeld? NAVRAGEN (actie ICT-beheer)
Staging server: aadsync02 (staging mode aan)
Password hash sync: aan
Seamless SSO: aan (computeraccount AZUREADSSOACC)
""",
    ),
]

# ---------------------------------------------------------------------------------------------
# Infrastructure: VMware/PowerCLI, Hyper-V, Ansible, PowerShell DSC, Terraform on Azure
# ---------------------------------------------------------------------------------------------
TEMPLATES += [
    _t(
        "infra-vmware/scripts/snapshot-report.ps1",
        "t23_pw",
        True,
        """# Wekelijks snapshotrapport vCenter (Taakplanner op util01, maandag 07:00)
Import-Module VMware.PowerCLI
Set-PowerCLIConfiguration -InvalidCertificateAction Ignore -Confirm:$false | Out-Null

Connect-VIServer -Server vcenter01.ardenholt.local -User 'administrator@vsphere.local' -Password '{V}'

$snaps = Get-VM | Get-Snapshot | Where-Object { $_.Created -lt (Get-Date).AddDays(-7) } |
    Select-Object VM, Name, Created, @{N = 'SizeGB'; E = { [math]::Round($_.SizeGB, 1) } }

$snaps | Export-Csv "\\\\util01\\rapporten$\\snapshots-$(Get-Date -Format yyyyMMdd).csv" -NoTypeInformation
if ($snaps) {
    Send-MailMessage -To 'ict-beheer@ardenholt.nl' -From 'util01@ardenholt.nl' `
        -Subject "Oude snapshots: $($snaps.Count)" -Body ($snaps | Out-String) -SmtpServer smtp-relay.ardenholt.local
}
Disconnect-VIServer -Confirm:$false
""",
    ),
    _t(
        "infra-vmware/scripts/snapshot-report-v2.ps1",
        "t23_ref_ps",
        False,
        """Import-Module VMware.PowerCLI
$vcPass = {V}
$cred = New-Object System.Management.Automation.PSCredential('svc_powercli@vsphere.local', (ConvertTo-SecureString $vcPass -AsPlainText -Force))
Connect-VIServer -Server vcenter01.ardenholt.local -Credential $cred
Get-VM | Get-Snapshot | Where-Object { $_.Created -lt (Get-Date).AddDays(-7) } | Format-Table VM, Name, Created
""",
    ),
    _t(
        "infra-vmware/esxi/kickstart-esx05.cfg",
        "t23_pw",
        True,
        """# ESXi 8 kickstart -- esx05 (nieuwe host cluster GEM-PRD, rack B2)
vmaccepteula
install --firstdisk --overwritevmfs
rootpw {V}
network --bootproto=static --ip=10.10.5.15 --netmask=255.255.255.0 --gateway=10.10.5.1 --hostname=esx05.ardenholt.local --nameserver=10.10.1.11 --vlanid=105
reboot

%firstboot --interpreter=busybox
vim-cmd hostsvc/enable_ssh
vim-cmd hostsvc/start_ssh
esxcli system ntp set --server=10.10.1.11 --enabled=true
""",
    ),
    _t(
        "infra-vmware/esxi/kickstart-template.cfg",
        "t23_sha512crypt",
        False,
        """# ESXi 8 kickstart template -- rootpw als crypt-hash (openssl passwd -6)
vmaccepteula
install --firstdisk --overwritevmfs
rootpw --iscrypted {V}
network --bootproto=dhcp --device=vmnic0
reboot
""",
    ),
    _t(
        "infra-hyperv/New-LabVM.ps1",
        "t23_weak_pw",
        True,
        """# Hyper-V lab (hv-lab01) voor testen van updates op de zaaksysteem-servers
param([string]$Name = 'lab-zaak01')

New-VM -Name $Name -MemoryStartupBytes 8GB -Generation 2 -NewVHDPath "D:\\Hyper-V\\$Name.vhdx" -NewVHDSizeBytes 80GB -SwitchName 'LAB'
Set-VMProcessor -VMName $Name -Count 4
Start-VM -Name $Name

# unattend: lokale admin van de labmachines
$localAdmin = New-Object System.Management.Automation.PSCredential('Administrator', (ConvertTo-SecureString '{V}' -AsPlainText -Force))
Invoke-Command -VMName $Name -Credential $localAdmin -ScriptBlock { Rename-Computer -NewName $using:Name -Restart }
""",
    ),
    _t(
        "infra-dsc/DomainController.ps1",
        "t23_pw",
        True,
        """Configuration ArdhDomainController
{
    Import-DscResource -ModuleName ActiveDirectoryDsc, PSDesiredStateConfiguration

    $dsrm = New-Object System.Management.Automation.PSCredential('Administrator', (ConvertTo-SecureString '{V}' -AsPlainText -Force))
    $domainAdmin = New-Object System.Management.Automation.PSCredential('ARDENHOLT\\dsc-install', (ConvertTo-SecureString '{V2}' -AsPlainText -Force))

    Node $AllNodes.NodeName
    {
        WindowsFeature ADDS { Name = 'AD-Domain-Services'; Ensure = 'Present' }

        ADDomainController DC03
        {
            DomainName                    = 'ardenholt.local'
            Credential                    = $domainAdmin
            SafeModeAdministratorPassword = $dsrm
            DependsOn                     = '[WindowsFeature]ADDS'
        }
    }
}

$cd = @{ AllNodes = @(@{ NodeName = 'dc03'; PSDscAllowPlainTextPassword = $true; PSDscAllowDomainUser = $true }) }
ArdhDomainController -ConfigurationData $cd -OutputPath C:\\DSC\\DC03
""",
    ),
    _t(
        "infra-dsc/ConfigurationData.psd1",
        "t23_ref_ps",
        False,
        """@{
    AllNodes    = @(
        @{ NodeName = '*'; CertificateFile = 'C:\\DSC\\dsc-encrypt.cer'; Thumbprint = 'from-cert-store' }
        @{ NodeName = 'dc03' }
        @{ NodeName = 'dc04' }
    )
    NonNodeData = @{
        DsrmPasswordSource = 'Azure Automation credential asset "DSRM"'
        ServiceAccountPassword = '{V}'
    }
}
""",
    ),
    _t(
        "infra-dsc/dsc-encrypt.cer.pem",
        "t23_cert",
        False,
        """# Certificaat voor versleuteling van credentials in DSC MOF-bestanden (public part).
# De private key staat alleen in LocalMachine\\My op de doelnodes.
{V}
""",
    ),
    _t(
        "infra-ansible/inventories/prd/group_vars/koha/vault.yml",
        "t23_ansible_vault",
        False,
        """{V}
""",
    ),
    _t(
        "infra-ansible/inventories/prd/group_vars/koha/vars.yml",
        "t23_ref_ansible",
        False,
        """---
koha_instance: bibliotheek
koha_db_host: db-koha01.ardenholt.local
koha_db_user: koha_bibliotheek
koha_db_pass: "{V}"
koha_plack_workers: 4
koha_ldap_bind_dn: "CN=svc_koha_ldap,OU=Serviceaccounts,OU=Beheer,DC=ardenholt,DC=local"
koha_ldap_bind_pw: "{V2}"
""",
    ),
    _t(
        "infra-ansible/inventories/acc/group_vars/moodle.yml",
        "t23_pw",
        True,
        """---
# Acceptatie Moodle (pg-moodle-acc01) -- niet in vault gezet "omdat het maar acceptatie is"
moodle_wwwroot: https://leerplatform-acc.ardenholt.nl
moodle_db_host: pg-moodle-acc01.ardenholt.local
moodle_db_user: moodle
moodle_db_password: "{V}"
moodle_admin_user: admin
moodle_admin_password: "{V2}"
moodle_redis_host: 127.0.0.1
""",
    ),
    _t(
        "infra-ansible/inventories/prd/group_vars/radius.yml",
        "t23_sops",
        False,
        """radius_ldap_server: ldaps://dc01.ardenholt.local
radius_ldap_identity: CN=svc_radius,OU=Serviceaccounts,DC=ardenholt,DC=local
radius_ldap_password: {V}
radius_clients:
    - name: unifi-controller
      ipaddr: 10.10.1.60
      secret: {V2}
sops:
    kms: []
    azure_kv:
        - vault_url: https://kv-ardh-prd.vault.azure.net
          name: sops-ansible
          version: 5b0e1f0c9a7d4e2b8c3f6a1d0e9b7c42
          created_at: "2025-02-11T10:22:05Z"
          enc: ptL3nV0q2xWc9dYf6bRk1sHa8uJm4ZeTg7oCiPvNyQw
    lastmodified: "2025-02-11T10:22:06Z"
    mac: ENC[AES256_GCM,data:k2+Yw0E0nTzH3rVq6eLJ3dTq1x2VQ8w4mQ==,iv:0dFq9Y1xj7WkJ4m2Z5pC6b8a0Vt3rN1sL9gH2eK5uYQ=,tag:S4bF1n8kQ2wE7tY0uI3oPg==,type:str]
    version: 3.8.1
""",
    ),
    _t(
        "infra-ansible/roles/geoserver/defaults/main.yml",
        "t23_app_default_pw",
        True,
        """---
# Defaults voor de GeoServer-rol. Let op: de admin is op gis-geo02 (test) nooit gewijzigd.
geoserver_version: "2.24.2"
geoserver_data_dir: /srv/geoserver/data
geoserver_admin_user: admin
geoserver_admin_password: "{V}"
geoserver_java_opts: "-Xms2g -Xmx4g -XX:+UseG1GC"
geoserver_cors_origins:
  - https://kaart.ardenholt.nl
""",
    ),
    _t(
        "infra-ansible/playbooks/deploy-ssh-keys.yml",
        "t23_ssh_pub",
        False,
        """---
- name: Beheerders-SSH-sleutels uitrollen op Linux-servers
  hosts: linux
  become: true
  tasks:
    - name: authorized_keys voor ansible-gebruiker
      ansible.posix.authorized_key:
        user: ansible
        state: present
        key: "{{ item }}"
      loop:
        - "{V}"
        - "{V2}"
""",
    ),
    _t(
        "infra-ansible/files/ansible_id_ed25519",
        "t23_openssh_key",
        True,
        """{V}
""",
    ),
    _t(
        "infra-terraform/envs/prd/terraform.tfvars",
        "t23_azure_secret",
        True,
        """# Productie -- subscription "Ardenholt-Productie"
subscription_id = "6a2d8f41-0c7e-4b93-8e15-f3a9d2c07b5e"
tenant_id       = "8c41f2d7-3e6b-4a90-b1c5-d2e7f0a39b64"
client_id       = "1f7b3e92-5d0a-4c68-a2f1-9e4b6d0c8a37"
client_secret   = "{V}"

location            = "westeurope"
resource_group_name = "rg-ardh-prd-weu"
sql_admin_login     = "sqladmin-ardh"
""",
    ),
    _t(
        "infra-terraform/envs/prd/main.tf",
        "t23_ref_tf",
        False,
        """terraform {
  required_version = ">= 1.6"
  backend "azurerm" {
    resource_group_name  = "rg-ardh-tfstate"
    storage_account_name = "stardhtfstate"
    container_name       = "tfstate"
    key                  = "prd.terraform.tfstate"
    use_azuread_auth     = true
  }
  required_providers {
    azurerm = { source = "hashicorp/azurerm", version = "~> 3.110" }
  }
}

provider "azurerm" {
  features {}
  subscription_id = var.subscription_id
  tenant_id       = var.tenant_id
  client_id       = var.client_id
  client_secret   = var.client_secret
}

resource "azurerm_mssql_server" "permits" {
  name                         = "sql-ardh-permits-prd"
  resource_group_name          = var.resource_group_name
  location                     = var.location
  version                      = "12.0"
  administrator_login          = var.sql_admin_login
  administrator_login_password = {V}
  minimum_tls_version          = "1.2"
}

resource "azurerm_key_vault_secret" "gis_storage" {
  name         = "gis-storage-key"
  value        = {V2}
  key_vault_id = azurerm_key_vault.prd.id
}
""",
    ),
    _t(
        "infra-terraform/envs/tst/main.tf",
        "t23_pw",
        True,
        """# Testomgeving: snel opgezet voor de CKAN-pilot (2024), nog niet opgeschoond.
resource "azurerm_postgresql_flexible_server" "ckan" {
  name                   = "psql-ardh-ckan-tst"
  resource_group_name    = "rg-ardh-tst-weu"
  location               = "westeurope"
  version                = "15"
  administrator_login    = "ckanadmin"
  administrator_password = "{V}"
  sku_name               = "B_Standard_B1ms"
  storage_mb             = 32768
  zone                   = "1"
}

resource "azurerm_postgresql_flexible_server_firewall_rule" "stadhuis" {
  name             = "stadhuis"
  server_id        = azurerm_postgresql_flexible_server.ckan.id
  start_ip_address = "185.34.77.10"
  end_ip_address   = "185.34.77.10"
}
""",
    ),
    _t(
        "infra-terraform/envs/prd/.terraform.lock.hcl",
        "t23_image_digest",
        False,
        """# This file is maintained automatically by "terraform init".
# Manual edits may be lost in future updates.

provider "registry.terraform.io/hashicorp/azurerm" {
  version     = "3.110.0"
  constraints = "~> 3.110"
  hashes = [
    "h1:q4xP0YbB8v4L0n2mR6c1Jz1yq0n8X2Hf3TgK7sVbW9M=",
    "zh:{V}",
    "zh:{V2}",
  ]
}
""",
    ),
    _t(
        "infra-terraform/modules/storage/outputs.tf",
        "t23_ref_tf",
        False,
        """output "storage_account_name" {
  value = azurerm_storage_account.this.name
}

output "primary_access_key" {
  value     = {V}
  sensitive = true
}
""",
    ),
    _t(
        "infra-terraform/envs/prd/terraform.tfstate.backup",
        "t23_storage_key",
        True,
        """{
  "version": 4,
  "terraform_version": "1.7.5",
  "serial": 212,
  "lineage": "3d2f8c1a-77b0-4e5c-9a61-b0f4e2d8c913",
  "outputs": {},
  "resources": [
    {
      "mode": "managed",
      "type": "azurerm_storage_account",
      "name": "gis",
      "provider": "provider[\\"registry.terraform.io/hashicorp/azurerm\\"]",
      "instances": [
        {
          "schema_version": 4,
          "attributes": {
            "account_kind": "StorageV2",
            "account_tier": "Standard",
            "name": "stardhgisprd",
            "primary_access_key": "{V}",
            "primary_blob_endpoint": "https://stardhgisprd.blob.core.windows.net/",
            "secondary_access_key": "{V2}"
          },
          "sensitive_attributes": []
        }
      ]
    }
  ]
}
""",
    ),
]

# ---------------------------------------------------------------------------------------------
# Open data: CKAN (data.ardenholt.nl) and API clients
# ---------------------------------------------------------------------------------------------
TEMPLATES += [
    _t(
        "opendata-ckan/ckan.ini",
        "t23_urlsafe_secret",
        True,
        """#
# CKAN - Pylons configuration (data.ardenholt.nl)
#
[DEFAULT]
debug = false

[app:main]
use = egg:ckan
ckan.site_url = https://data.ardenholt.nl
ckan.site_id = ardenholt
ckan.site_title = Open Data Ardenholt
ckan.locale_default = nl
ckan.locales_offered = nl en de pl

## Session settings
beaker.session.key = ckan
beaker.session.secret = {V}
SECRET_KEY = {V2}
WTF_CSRF_SECRET_KEY = {V2}

## Authorization / API tokens
api_token.nbytes = 60
api_token.jwt.encode.secret = string:{V3}
api_token.jwt.decode.secret = string:{V3}
api_token.jwt.algorithm = HS256

## Database
sqlalchemy.url = postgresql://ckan_default@psql-ardh-ckan-prd.postgres.database.azure.com/ckan?sslmode=require
ckan.datastore.write_url = postgresql://ckan_default@psql-ardh-ckan-prd.postgres.database.azure.com/datastore_default
ckan.datastore.read_url = postgresql://datastore_ro@psql-ardh-ckan-prd.postgres.database.azure.com/datastore_default

ckan.plugins = activity datastore datapusher scheming_datasets dcat harvest ardenholt_theme
ckan.storage_path = /var/lib/ckan
""",
    ),
    _t(
        "opendata-ckan/ckan-acc.ini",
        "t23_url_pw",
        True,
        """[app:main]
use = egg:ckan
ckan.site_url = https://data-acc.ardenholt.nl
sqlalchemy.url = postgresql://ckan_default:{V}@psql-ardh-ckan-tst.postgres.database.azure.com/ckan?sslmode=require
ckan.datastore.write_url = postgresql://ckan_default:{V}@psql-ardh-ckan-tst.postgres.database.azure.com/datastore_default
ckan.datastore.read_url = postgresql://datastore_ro:{V2}@psql-ardh-ckan-tst.postgres.database.azure.com/datastore_default
ckan.redis.url = redis://:{V3}@redis-ckan-acc.ardenholt.local:6379/1
solr_url = http://solr-ckan-acc.ardenholt.local:8983/solr/ckan
""",
    ),
    _t(
        "opendata-ckan/ckan-docker/.env.example",
        "t23_doc_pw",
        False,
        """# Voorbeeld uit ckan-docker (upstream), aangepast voor lokaal ontwikkelen.
# Deze waarden zijn de publiek gedocumenteerde defaults van ckan-docker; nooit in productie.
CKAN_SITE_URL=https://localhost:8443
CKAN_SYSADMIN_NAME=ckan_admin
CKAN_SYSADMIN_PASSWORD={V}
CKAN_SYSADMIN_EMAIL=your_email@example.com
POSTGRES_USER=postgres
POSTGRES_PASSWORD={V2}
CKAN_DB_USER=ckandbuser
CKAN_DB_PASSWORD={V3}
CKAN_SQLALCHEMY_URL=postgresql://ckandbuser:{V3}@db.example.com/ckandb
""",
    ),
    _t(
        "opendata-ckan/harvest/push_afvalcontainers.py",
        "t23_jwt",
        True,
        """#!/usr/bin/env python3
\"\"\"Werkt de dataset 'afvalcontainers' bij op data.ardenholt.nl (dagelijks, Azure Function).\"\"\"

import ckanapi

CKAN_URL = "https://data.ardenholt.nl"
# API token van de sysadmin-gebruiker 'etl-openruimte' (aangemaakt 2024-11-03)
CKAN_TOKEN = "{V}"


def main():
    ckan = ckanapi.RemoteCKAN(CKAN_URL, apikey=CKAN_TOKEN, user_agent="ardh-etl/1.3")
    pkg = ckan.action.package_show(id="afvalcontainers")
    with open("/tmp/afvalcontainers.geojson", "rb") as fh:
        ckan.action.resource_patch(id=pkg["resources"][0]["id"], upload=fh)
    print("bijgewerkt:", pkg["title"])


if __name__ == "__main__":
    main()
""",
    ),
    _t(
        "opendata-ckan/harvest/legacy_push.sh",
        "t23_ckan_legacy",
        True,
        """#!/bin/sh
# Oude push (CKAN 2.8, API key per gebruiker). Draait nog op util01 voor de parkeerdata.
CKAN=https://data.ardenholt.nl
APIKEY={V}
curl -s -H "Authorization: $APIKEY" \\
  -F "id=parkeergarages-bezetting" -F "upload=@/data/parkeren/bezetting.csv" \\
  "$CKAN/api/3/action/resource_update"
""",
    ),
    _t(
        "opendata-ckan/harvest/datasets.yml",
        "t23_uuid",
        False,
        """# Datasets met vaste resource-id's (CKAN UUID's), gebruikt door de ETL-jobs
datasets:
  - name: afvalcontainers
    resource_id: {V}
    schedule: daily
  - name: parkeergarages-bezetting
    resource_id: {V2}
    schedule: "*/15 * * * *"
  - name: bomenregister
    resource_id: {V3}
    schedule: weekly
""",
    ),
    _t(
        "opendata-ckan/ckanext-ardenholt/ckanext/ardenholt/i18n/de/LC_MESSAGES/ckanext-ardenholt.po",
        "t23_i18n",
        False,
        """# German translations for ckanext-ardenholt.
msgid ""
msgstr ""
"Language: de\\n"
"Content-Type: text/plain; charset=UTF-8\\n"

msgid "API Token"
msgstr "API-Token"

msgid "Create API token"
msgstr "API-Token erstellen"

msgid "token_expired_notice"
msgstr "{V}"

msgid "Password"
msgstr "Passwort"
""",
    ),
    _t(
        "opendata-api/parkeren-api/src/config.ts",
        "t23_ref_sh",
        False,
        """// Parkeer-API (api.ardenholt.nl/parkeren), Azure Container Apps
export const config = {
  port: Number(process.env.PORT ?? 8080),
  redisUrl: process.env.REDIS_URL ?? "redis://localhost:6379",
  // doorgegeven door de container-entrypoint: {V}
  upstreamToken: process.env.PARKING_VENDOR_TOKEN ?? "",
  cacheSeconds: 60,
};
""",
    ),
    _t(
        "opendata-api/parkeren-api/src/vendor.ts",
        "t23_b64_basic",
        True,
        """// Client voor de bezettingsdata van de parkeergarages (leverancier Q-Park feed).
import { fetch } from "undici";

const FEED = "https://feeds.parkeervendor.nl/v3/ardenholt/occupancy";
// Basic auth van het feed-account (gekregen per mail van de leverancier)
const AUTH = "Basic {V}";

export async function occupancy(): Promise<Record<string, number>> {
  const res = await fetch(FEED, { headers: { Authorization: AUTH, Accept: "application/json" } });
  if (!res.ok) throw new Error(`feed ${res.status}`);
  const body = (await res.json()) as { garages: { id: string; free: number }[] };
  return Object.fromEntries(body.garages.map((g) => [g.id, g.free]));
}
""",
    ),
    _t(
        "opendata-api/parkeren-api/test/vendor.test.ts",
        "t23_fake",
        False,
        """import { describe, it, expect, vi } from "vitest";

vi.mock("undici", () => ({
  fetch: vi.fn(async () => ({ ok: true, json: async () => ({ garages: [{ id: "centrum", free: 42 }] }) })),
}));

describe("occupancy", () => {
  it("maps garages", async () => {
    process.env.PARKING_VENDOR_TOKEN = "{V}";
    const { occupancy } = await import("../src/vendor");
    expect(await occupancy()).toEqual({ centrum: 42 });
  });
});
""",
    ),
    _t(
        "opendata-api/sms-notificaties/notify.py",
        "t23_twilio_token",
        True,
        """\"\"\"SMS bij status-wijziging van een vergunningaanvraag (opt-in via Mijn Ardenholt).\"\"\"

from twilio.rest import Client

ACCOUNT_SID = "AC5e0f2d9b7c41a83e6f1d0b2c9a4e7f85"
AUTH_TOKEN = "{V}"
FROM = "+3197010520123"

client = Client(ACCOUNT_SID, AUTH_TOKEN)


def stuur_status(telefoon: str, zaaknummer: str, status: str) -> str:
    msg = client.messages.create(
        to=telefoon,
        from_=FROM,
        body=f"Gemeente Ardenholt: uw aanvraag {zaaknummer} heeft nu status '{status}'.",
    )
    return msg.sid
""",
    ),
    _t(
        "opendata-api/sms-notificaties/settings.toml",
        "t23_twilio_sid",
        False,
        """[twilio]
# Account SID en messaging service zijn identificaties, geen geheimen.
account_sid = "{V}"
subaccount_sid = "{V2}"  # subaccount "vergunningen"
auth_token_env = "TWILIO_AUTH_TOKEN"

[limits]
max_per_dag = 2000
""",
    ),
]

# ---------------------------------------------------------------------------------------------
# CI: Jenkins and Azure DevOps; containers and Kubernetes
# ---------------------------------------------------------------------------------------------
TEMPLATES += [
    _t(
        "ci/jenkins/Jenkinsfile.vera",
        "t23_ref_jenkins",
        False,
        """pipeline {
    agent { label 'linux-java' }
    environment {
        WL_ADMIN_URL = 't3://vera-adm01.ardenholt.local:7001'
        WL_PASSWORD  = {V}
    }
    stages {
        stage('Build') {
            steps { sh 'mvn -B -DskipTests clean package' }
        }
        stage('Deploy ACC') {
            when { branch 'develop' }
            steps {
                withCredentials([usernamePassword(credentialsId: 'vera-weblogic-acc', usernameVariable: 'WL_USER', passwordVariable: 'WL_PASS')]) {
                    sh 'java weblogic.Deployer -adminurl $WL_ADMIN_URL -username $WL_USER -password $WL_PASS -deploy -name vera -source target/vera.ear -targets vera_cluster'
                }
            }
        }
    }
}
""",
    ),
    _t(
        "ci/jenkins/Jenkinsfile.geoserver",
        "t23_app_default_pw",
        True,
        """pipeline {
    agent any
    stages {
        stage('Publish styles') {
            steps {
                // TODO credentials-plugin gebruiken; test-GeoServer heeft nog default admin
                sh '''
                  for sld in styles/*.sld; do
                    curl -fsS -u admin:{V} -X POST -H "Content-type: application/vnd.ogc.sld+xml" \\
                      --data-binary @"$sld" "http://gis-geo02.ardenholt.local:8080/geoserver/rest/styles"
                  done
                '''
            }
        }
    }
}
""",
    ),
    _t(
        "ci/jenkins/casc/jenkins.yaml",
        "t23_jenkins_enc",
        False,
        """jenkins:
  systemMessage: "Jenkins Gemeente Ardenholt -- beheer: ICT-beheer"
  numExecutors: 0
  securityRealm:
    activeDirectory:
      domains:
        - name: "ardenholt.local"
          servers: "dc01.ardenholt.local:3268,dc02.ardenholt.local:3268"
          bindName: "CN=svc_jenkins,OU=Serviceaccounts,OU=Beheer,DC=ardenholt,DC=local"
          bindPassword: "{V}"
credentials:
  system:
    domainCredentials:
      - credentials:
          - usernamePassword:
              scope: GLOBAL
              id: "vera-weblogic-acc"
              username: "weblogic"
              password: "{V2}"
          - string:
              scope: GLOBAL
              id: "ado-pat-pipelines"
              secret: "{V3}"
""",
    ),
    _t(
        "ci/jenkins/scripts/trigger-remote.sh",
        "t23_jenkins_token",
        True,
        """#!/bin/sh
# Start de nachtelijke BAG-load vanaf gis-etl01 via de Jenkins API (gebruiker svc_gis)
JENKINS=https://jenkins.ardenholt.local
curl -fsS -X POST -u "svc_gis:{V}" "$JENKINS/job/gis/job/bag-load/buildWithParameters?MAAND=$(date +%Y%m)"
""",
    ),
    _t(
        "ci/jenkins/scripts/jenkins-cli.txt",
        "t23_jenkins_token",
        True,
        """Jenkins CLI -- handig voor ICT-beheer

java -jar jenkins-cli.jar -s https://jenkins.ardenholt.local/ -auth p.nowak:{V} list-jobs gis
java -jar jenkins-cli.jar -s https://jenkins.ardenholt.local/ -auth p.nowak:{V} safe-restart

(token aangemaakt onder Gebruiker > Configureren > API Token, naam 'cli-laptop')
""",
    ),
    _t(
        "ci/azure-devops/permits-api.azure-pipelines.yml",
        "t23_ref_ado",
        False,
        """trigger:
  branches:
    include: [ main ]

pool:
  vmImage: windows-latest

variables:
  - group: permits-prd
  - name: buildConfiguration
    value: Release

stages:
  - stage: Build
    jobs:
      - job: build
        steps:
          - task: DotNetCoreCLI@2
            inputs:
              command: publish
              projects: 'Ardenholt.Permits.Api/*.csproj'
              arguments: '-c $(buildConfiguration) -o $(Build.ArtifactStagingDirectory)'
  - stage: Deploy
    jobs:
      - deployment: prd
        environment: permits-prd
        strategy:
          runOnce:
            deploy:
              steps:
                - task: FileTransform@2
                  inputs:
                    folderPath: '$(Pipeline.Workspace)/drop'
                    jsonTargetFiles: 'appsettings.Production.json'
                - task: AzureWebApp@1
                  inputs:
                    azureSubscription: 'sc-ardh-prd'
                    appName: 'app-ardh-permits-prd'
                    appSettings: '-AzureAd__ClientSecret "{V}" -Storage__Key "{V2}"'
""",
    ),
    _t(
        "ci/azure-devops/templates/npm-auth.yml",
        "t23_ado_pat",
        True,
        """# Authenticeert tegen de Azure Artifacts feed 'ardenholt-npm' (template, door Team Online)
steps:
  - script: |
      echo "registry=https://pkgs.dev.azure.com/gemeente-ardenholt/_packaging/ardenholt-npm/npm/registry/" > .npmrc
      echo "always-auth=true" >> .npmrc
      echo "//pkgs.dev.azure.com/gemeente-ardenholt/_packaging/ardenholt-npm/npm/registry/:username=ardenholt" >> .npmrc
      echo "//pkgs.dev.azure.com/gemeente-ardenholt/_packaging/ardenholt-npm/npm/registry/:_password=$(echo -n '{V}' | base64)" >> .npmrc
      echo "//pkgs.dev.azure.com/gemeente-ardenholt/_packaging/ardenholt-npm/npm/registry/:email=npm@ardenholt.nl" >> .npmrc
    displayName: npm auth (Artifacts)
""",
    ),
    _t(
        "ci/azure-devops/scripts/clone-all-repos.ps1",
        "t23_ado_pat",
        True,
        """# Clone alle repos uit het project 'Gemeente' (voor de back-up naar de NAS, wekelijks)
$org = 'https://dev.azure.com/gemeente-ardenholt'
$pat = '{V}'
$auth = [Convert]::ToBase64String([Text.Encoding]::ASCII.GetBytes(":$pat"))
$repos = Invoke-RestMethod -Uri "$org/Gemeente/_apis/git/repositories?api-version=7.1" -Headers @{ Authorization = "Basic $auth" }
foreach ($r in $repos.value) {
    git clone --mirror "https://ardenholt:$pat@dev.azure.com/gemeente-ardenholt/Gemeente/_git/$($r.name)" "\\\\nas01\\git-backup\\$($r.name).git"
}
""",
    ),
    _t(
        "ci/azure-devops/scripts/clone-all-repos-v2.ps1",
        "t23_ref_ado",
        False,
        """# v2: draait als pipeline-job; gebruikt de System.AccessToken van de build service
$org = 'https://dev.azure.com/gemeente-ardenholt'
$token = '{V}'
$repos = Invoke-RestMethod -Uri "$org/Gemeente/_apis/git/repositories?api-version=7.1" -Headers @{ Authorization = "Bearer $token" }
$repos.value | ForEach-Object { git -c http.extraheader="AUTHORIZATION: bearer $token" clone --mirror $_.remoteUrl }
""",
    ),
    _t(
        "ci/azure-devops/pipelines/terraform.yml",
        "t23_azure_secret",
        True,
        """# Terraform plan/apply voor infra-terraform (self-hosted agent op util02)
pool: ardh-selfhosted

variables:
  ARM_TENANT_ID: 8c41f2d7-3e6b-4a90-b1c5-d2e7f0a39b64
  ARM_SUBSCRIPTION_ID: 6a2d8f41-0c7e-4b93-8e15-f3a9d2c07b5e
  ARM_CLIENT_ID: 1f7b3e92-5d0a-4c68-a2f1-9e4b6d0c8a37
  # tijdelijk hier; variable group 'terraform-sp' werkte niet met de self-hosted agent
  ARM_CLIENT_SECRET: '{V}'

steps:
  - script: terraform -chdir=envs/prd init -input=false
    displayName: init
  - script: terraform -chdir=envs/prd plan -input=false -out=tfplan
    displayName: plan
""",
    ),
    _t(
        "ci/azure-devops/pipelines/terraform-v2.yml",
        "t23_uuid",
        False,
        """pool: ardh-selfhosted

variables:
  - group: terraform-sp
  - name: ARM_TENANT_ID
    value: {V}
  - name: ARM_SUBSCRIPTION_ID
    value: {V2}
  - name: ARM_CLIENT_ID
    value: {V3}

steps:
  - task: AzureCLI@2
    inputs:
      azureSubscription: sc-ardh-terraform
      scriptType: bash
      addSpnToEnvironment: true
      inlineScript: |
        export ARM_CLIENT_SECRET=$servicePrincipalKey
        terraform -chdir=envs/prd init -input=false
        terraform -chdir=envs/prd plan -input=false -out=tfplan
""",
    ),
    _t(
        "ci/github-mirror/sync-to-github.sh",
        "t23_github",
        True,
        """#!/bin/bash
# Spiegelt de open-source repos (ckanext-ardenholt, qgis-plugins) naar github.com/gemeente-ardenholt
set -euo pipefail
GH_TOKEN={V}
for repo in ckanext-ardenholt ardh-qgis-plugins; do
  cd "/srv/mirror/$repo.git"
  git push --mirror "https://x-access-token:${GH_TOKEN}@github.com/gemeente-ardenholt/$repo.git"
done
""",
    ),
    _t(
        "ci/github-mirror/.github/workflows/release.yml",
        "t23_git_sha",
        False,
        """name: release
on:
  push:
    tags: ["v*"]
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@{V}  # v4.2.2
      - uses: actions/setup-python@{V2}  # v5.3.0
        with:
          python-version: "3.11"
      - run: python -m pip install build && python -m build
      - uses: pypa/gh-action-pypi-publish@{V3}  # release/v1
        with:
          password: ${{ secrets.PYPI_API_TOKEN }}
""",
    ),
    _t(
        "platform/k8s/moodle/secret.yaml",
        "t23_b64_pw",
        True,
        """# Moodle op AKS (pilot basisscholen). Let op: dit is base64, geen versleuteling.
apiVersion: v1
kind: Secret
metadata:
  name: moodle-db
  namespace: leerplatform
type: Opaque
data:
  username: bW9vZGxl
  password: {V}
""",
    ),
    _t(
        "platform/k8s/moodle/sealedsecret.yaml",
        "t23_sops",
        False,
        """# Versleuteld met SOPS (Azure Key Vault key 'sops-aks'); ontsleutelen gebeurt in Flux.
apiVersion: v1
kind: Secret
metadata:
  name: moodle-db
  namespace: leerplatform
type: Opaque
stringData:
  username: moodle
  password: {V}
""",
    ),
    _t(
        "platform/k8s/ckan/deployment.yaml",
        "t23_secret_name",
        False,
        """apiVersion: apps/v1
kind: Deployment
metadata:
  name: ckan
  namespace: opendata
spec:
  replicas: 2
  selector:
    matchLabels: { app: ckan }
  template:
    metadata:
      labels: { app: ckan }
    spec:
      containers:
        - name: ckan
          image: acrardh.azurecr.io/ckan-ardenholt:2.10.5-ardh3
          ports:
            - containerPort: 5000
          env:
            - name: CKAN_SQLALCHEMY_URL
              valueFrom:
                secretKeyRef:
                  name: {V}
                  key: sqlalchemy-url
            - name: CKAN___BEAKER__SESSION__SECRET
              valueFrom:
                secretKeyRef:
                  name: {V2}
                  key: session-secret
""",
    ),
    _t(
        "platform/helm/geoserver/values-prd.yaml",
        "t23_image_digest",
        False,
        """image:
  repository: acrardh.azurecr.io/geoserver
  tag: 2.24.2-ardh1
  digest: "{V}"
admin:
  existingSecret: geoserver-admin
  passwordKey: password
postgis:
  host: pg-gis01.ardenholt.local
  existingSecret: geoserver-postgis
resources:
  requests: { cpu: "1", memory: 3Gi }
  limits: { memory: 6Gi }
initImage:
  repository: busybox
  digest: "{V2}"
""",
    ),
    _t(
        "platform/helm/geoserver/values-tst.yaml",
        "t23_pw",
        True,
        """image:
  repository: acrardh.azurecr.io/geoserver
  tag: 2.24.2-ardh1
admin:
  password: "{V}"
postgis:
  host: pg-gis-tst01.ardenholt.local
  user: geoserver_ro
  password: "{V2}"
ingress:
  enabled: true
  host: gis-tst.ardenholt.nl
""",
    ),
    _t(
        "platform/docker/koha/Dockerfile",
        "t23_pw",
        True,
        """FROM debian:bookworm-slim
# Koha test-image voor de leverancier (ByWater) -- niet voor productie
ENV DEBIAN_FRONTEND=noninteractive \\
    KOHA_INSTANCE=bibliotheek \\
    KOHA_DB_HOST=db \\
    KOHA_DB_PASS={V}
RUN apt-get update && apt-get install -y --no-install-recommends gnupg wget ca-certificates \\
 && wget -qO - https://debian.koha-community.org/koha/gpg.asc | gpg --dearmor -o /usr/share/keyrings/koha.gpg \\
 && echo "deb [signed-by=/usr/share/keyrings/koha.gpg] https://debian.koha-community.org/koha 24.05 main" > /etc/apt/sources.list.d/koha.list \\
 && apt-get update && apt-get install -y koha-common \\
 && rm -rf /var/lib/apt/lists/*
COPY koha-sites.conf /etc/koha/koha-sites.conf
EXPOSE 8080 8081
CMD ["/docker/start.sh"]
""",
    ),
    _t(
        "platform/docker/koha/docker-compose.yml",
        "t23_ref_sh",
        False,
        """services:
  koha:
    build: .
    environment:
      KOHA_DB_PASS: {V}
    depends_on: [db]
  db:
    image: mariadb:10.11
    environment:
      MARIADB_ROOT_PASSWORD: ${MARIADB_ROOT_PASSWORD:?set in .env}
      MARIADB_DATABASE: koha_bibliotheek
""",
    ),
    _t(
        "platform/docker/registry-login.sh",
        "t23_azure_secret",
        True,
        """#!/bin/sh
# Inloggen op ACR vanaf de build-VM (service principal 'sp-acr-push')
az login --service-principal -u 2b8e4f17-9a3c-4d61-b05e-7c1f9d2a8e36 -p '{V}' --tenant 8c41f2d7-3e6b-4a90-b1c5-d2e7f0a39b64
az acr login --name acrardh
""",
    ),
]

# ---------------------------------------------------------------------------------------------
# Keys and certificates lying around in repositories
# ---------------------------------------------------------------------------------------------
TEMPLATES += [
    _t(
        "netwerk-configs/freeradius/certs/server.key",
        "t23_rsa_key",
        True,
        """{V}
""",
    ),
    _t(
        "netwerk-configs/freeradius/certs/server.pem",
        "t23_cert",
        False,
        """{V}
""",
    ),
    _t(
        "netwerk-configs/freeradius/certs/server-encrypted.key",
        "t23_encrypted_pem",
        False,
        """{V}
""",
    ),
    _t(
        "scada-mosquitto/certs/README.md",
        "t23_ec_key",
        True,
        """# Certificaten mqtt01.scada

Uitgegeven door de interne SCADA-CA (`ardh-scada-ca`), geldig 2 jaar.

`mqtt01.key` (kopie, omdat de Pi van gemaal Zuidkade hem ook nodig had voor client-auth):

```
{V}
```

Vernieuwen: `step ca certificate mqtt01.scada.ardenholt.local mqtt01.crt mqtt01.key`
""",
    ),
    _t(
        "scada-mosquitto/certs/ardh-scada-ca.crt",
        "t23_cert",
        False,
        """# ardh-scada-ca root (public), distributed to all gateways
{V}
""",
    ),
    _t(
        "gis-scripts/arcgis/portal-saml/sp-signing.key",
        "t23_pkcs8_key",
        True,
        """{V}
""",
    ),
    _t(
        "gis-scripts/arcgis/portal-saml/sp-signing.pub",
        "t23_public_pem",
        False,
        """{V}
""",
    ),
    _t(
        "platform/k8s/ingress/tls-portaal.yaml",
        "t23_b64_pem",
        True,
        """apiVersion: v1
kind: Secret
metadata:
  name: tls-portaal
  namespace: portaal
type: kubernetes.io/tls
data:
  tls.crt: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUJrakNDQVRlZ0F3SUJBZ0lVZGFy
  tls.key: {V}
""",
    ),
    _t(
        "platform/k8s/flux/deploy-key.yaml",
        "t23_openssh_key",
        True,
        """# Flux deploy key voor repo platform-gitops (Azure DevOps), read-only
apiVersion: v1
kind: Secret
metadata:
  name: flux-system
  namespace: flux-system
stringData:
  identity: |
    {IV}
  known_hosts: |
    ssh.dev.azure.com ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7Hr1oTWqNqOlzGJOfGJ4NakVyIzf1rXYd4d7wo6jBlkLvCA4odBlL0mDUyZ0/QUfTTqeu+tm22gOsv+VrVTMk6vwRU75gY/y9ut5Mb3bR5BV58dKXyq9A9UeB5Cakehn5Zgm6x1mKoVyf+FFn26iYqXJRgzIZZcZ5V6hrE0Qg39kZm4az48o0AUbf6Sp4SLdvnuMa2sVNwHBboS7EJkm57XQPVU3/QpyNLHbWDdzwtrlS+ez30S3AdYhLKEOxAG8weOnyrtLJAUen9mTkol8oII1edf7mWWbWVf0nBmly21+nZcmCTISQBtdcyPaEno7fFQMDD26/s0lfKob4Kw8H
""",
    ),
    _t(
        "opendata-ckan/ckan-docker/nginx/setup/ckan-local.key",
        "t23_rsa_key",
        True,
        """{V}
""",
    ),
    _t(
        "portaal-drupal/keys/simple_oauth/public.key",
        "t23_public_pem",
        False,
        """{V}
""",
    ),
    _t(
        "portaal-drupal/keys/simple_oauth/private.key",
        "t23_pkcs8_key",
        True,
        """{V}
""",
    ),
    _t(
        "infra-ansible/files/authorized_keys_ansible",
        "t23_ssh_pub",
        False,
        """# Beheerders met toegang tot de Ansible control node (ansible01)
{V}
{V2}
{V3}
""",
    ),
    _t(
        "gis-scripts/arcgis/service-account.json",
        "t23_json_pem",
        True,
        """{
  "type": "service_account",
  "project_id": "ardenholt-gis-geocoding",
  "private_key_id": "7c4e1b9a02d35f86e0a17b2c9d4f3e51a6b8c0d2",
  "private_key": "{V}",
  "client_email": "geocoder@ardenholt-gis-geocoding.iam.gserviceaccount.com",
  "client_id": "104918273645501928374",
  "auth_uri": "https://accounts.google.com/o/oauth2/auth",
  "token_uri": "https://oauth2.googleapis.com/token"
}
""",
    ),
]

# ---------------------------------------------------------------------------------------------
# Paperwork: runbooks, council IT notes, vendor handovers, helpdesk tickets, chat exports
# (English, Dutch, German, Polish), notebooks
# ---------------------------------------------------------------------------------------------
TEMPLATES += [
    _t(
        "docs/runbooks/nl/storing-gemalen.md",
        "t23_pw",
        True,
        """# Runbook: storing gemalen (buiten kantoortijd)

**Doel:** piketmedewerker ICT kan binnen 30 minuten vaststellen of een storing in de
gemalen aan de ICT-kant (netwerk, MQTT, Node-RED) of aan de procesautomatisering ligt.

## Stappen

1. Open het dashboard `https://scada-nr01.scada.ardenholt.local:1880/ui` (VPN-profiel *SCADA*).
2. Rood bolletje bij een gemaal? Kijk in MQTT Explorer of er nog berichten binnenkomen:
   - broker: `mqtt01.scada.ardenholt.local:8883`
   - gebruiker: `piket`
   - wachtwoord: `{V}`
3. Komen er geen berichten binnen: ping de gateway (zie tabel hieronder).
4. Komen er wel berichten binnen maar is de Node-RED flow gestopt: herstart de service
   (`sudo systemctl restart nodered` op scada-nr01).
5. Bel bij twijfel de piket van Hydroflex: +49 2821 555 0190.

| Gemaal      | Gateway-IP  |
|-------------|-------------|
| Molenweg    | 10.60.3.21  |
| Zuidkade    | 10.60.5.10  |
| Heidepark   | 10.60.7.10  |
""",
    ),
    _t(
        "docs/runbooks/nl/storing-gemalen-v2.md",
        "t23_redacted",
        False,
        """# Runbook: storing gemalen (buiten kantoortijd) -- versie 2

Wachtwoorden staan niet meer in dit document (audit-bevinding 2024-07).

2. Open MQTT Explorer:
   - broker: `mqtt01.scada.ardenholt.local:8883`
   - gebruiker: `piket`
   - wachtwoord: {V} (Keeper: *SCADA / MQTT / piket*)
""",
    ),
    _t(
        "docs/runbooks/en/vcenter-recovery.md",
        "t23_pw",
        True,
        """# Runbook: vCenter appliance recovery

Applies to `vcenter01.ardenholt.local` (VCSA 8.0 U2). Written by the VMware partner during
the 2024 migration; last reviewed by ICT-beheer in January.

## Break-glass access

If SSO is broken and AD authentication fails, log in to the VAMI on port 5480 as `root`.

- VAMI root password: `{V}`
- `administrator@vsphere.local`: `{V2}`

Rotate both after use and update the password safe (folder *Infra / VMware*).

## Restore from file-based backup

1. Deploy a fresh VCSA from the ISO on `esx01` (stage 1).
2. In stage 2 choose *Restore* and point it to `sftp://nas01.ardenholt.local/vcsa-backup/`.
3. The backup encryption password is in the password safe, entry *VCSA backup*.
""",
    ),
    _t(
        "docs/runbooks/en/vcenter-recovery-template.md",
        "t23_placeholder",
        False,
        """# Runbook template: appliance recovery

## Break-glass access

- VAMI root password: `{V}`
- `administrator@vsphere.local`: `{V2}`

Fill in from the password safe when printing the offline copy for the emergency binder;
never commit a filled-in copy.
""",
    ),
    _t(
        "docs/runbooks/de/vpn-zugang-dienstleister.md",
        "t23_psk",
        True,
        """# VPN-Zugang für Dienstleister (FortiClient)

Gilt für: Hydroflex GmbH, Vialis, GeoCat. Stand: Februar.

1. FortiClient VPN installieren (Version 7.2 oder neuer).
2. Neue Verbindung anlegen:
   - Typ: IPsec VPN
   - Remote-Gateway: `vpn.ardenholt.nl`
   - Authentifizierungsmethode: Pre-shared Key
   - Pre-shared Key: `{V}`
   - Benutzername: wird pro Firma vergeben
3. Die Zwei-Faktor-Anmeldung erfolgt über FortiToken Mobile.

Bei Problemen: ict-beheer@ardenholt.nl oder +31 488 555 200.
""",
    ),
    _t(
        "docs/runbooks/de/passwortrichtlinie.md",
        "t23_policy",
        False,
        """# Passwortrichtlinie Stadt Ardenholt (Auszug für Dienstleister)

- Mindestlänge Kennwort für Benutzerkonten: {V} Zeichen
- Dienstkonten: mindestens 24 Zeichen, zufällig erzeugt, Ablage im Passwortsafe
- Maximales Kennwortalter Benutzer: {V2} Tage
- Sperre nach {V3} Fehlversuchen
- Kennwörter niemals per E-Mail, Teams oder im Ticket übermitteln.
""",
    ),
    _t(
        "docs/runbooks/pl/instrukcja-moodle.md",
        "t23_pw",
        True,
        """# Instrukcja: administracja Moodle dla szkoły "Orzeł"

Platforma: https://leerplatform.ardenholt.nl/szkola-orzel

## Konto administratora szkoły

- Login: `admin.orzel`
- Hasło startowe: `{V}`
- Po pierwszym logowaniu system poprosi o zmianę hasła.

## Dodawanie uczniów

Uczniowie są synchronizowani automatycznie z ParnasSys każdej nocy. Jeśli uczeń nie
pojawia się w kursie, sprawdź kohortę *Orzeł - klasa X* i zgłoś problem w TOPdesk.
""",
    ),
    _t(
        "docs/runbooks/pl/instrukcja-wifi.md",
        "t23_i18n",
        False,
        """# Wi-Fi w bibliotece i ratuszu

Sieć **Ardenholt-Gratis** jest otwarta, bez hasła. Po połączeniu pojawi się strona
powitalna z regulaminem.

Komunikaty na stronie logowania pracowników (tłumaczenie):

- `login.error`: "{V}"
- `login.expired`: "{V2}"
""",
    ),
    _t(
        "docs/raad/2025-03-12-commissie-bestuur-ict-notities.md",
        "t23_weak_pw",
        True,
        """# Commissie Bestuur & Middelen -- ICT-notities (12 maart)

Notulist: E. Bakker (griffie). Alleen voor intern gebruik.

## 1. Raadsinformatiesysteem (iBabs)

- De livestream van de raadsvergadering haperde op 20 februari; oorzaak: upload via het
  gastennetwerk. Voortaan via VLAN 30 (vaste verbinding raadszaal).
- Tablet van de voorzitter opnieuw ingericht. Het tijdelijke wachtwoord van het
  presentatie-account `raadzaal-pc` is `{V}` -- graag na de vergadering wijzigen (actie ICT).

## 2. Informatiebeveiliging

- De ENSIA-audit is in voorbereiding. Bevinding vorig jaar: wachtwoorden in documenten.
- Wethouder vraagt naar de voortgang MFA voor raadsleden: 31 van 33 raadsleden aangemeld.

## 3. Rondvraag

- Raadslid Van Dijk: kan de openbare Wi-Fi in de raadszaal sneller? ICT kijkt naar een
  extra access point.
""",
    ),
    _t(
        "docs/raad/2025-04-09-commissie-bestuur-ict-notities.md",
        "t23_case_no",
        False,
        """# Commissie Bestuur & Middelen -- ICT-notities (9 april)

## 1. Actiepunten vorige keer

- Tijdelijk wachtwoord raadzaal-pc gewijzigd (afgehandeld in {V}).
- Extra access point raadszaal besteld (inkoop {V2}).

## 2. Datalek-melding

- Melding {V3} bij de AP: verkeerd verzonden aanslagbiljet (1 burger). Afgehandeld.

## 3. Planning

- Migratie BELIS naar versie 4: go-live na de zomer.
""",
    ),
    _t(
        "docs/overdracht/kleiweg-portaal-overdracht.md",
        "t23_pw",
        True,
        """# Overdrachtsdocument burgerportaal -- Webbureau Kleiweg B.V. -> Gemeente Ardenholt

Datum: 28 februari. Versie 1.2 (definitief).

## 1. Omgevingen

| Omgeving   | URL                                   | Server        |
|------------|---------------------------------------|---------------|
| Productie  | https://www.ardenholt.nl              | prd-web01/02  |
| Acceptatie | https://acc-portaal.ardenholt.nl      | acc-web01     |

## 2. Accounts

- Drupal beheerder (uid 1): `kleiweg-admin` / `{V}` -- **wijzigen na overdracht**
- SFTP productie: `deploy@prd-web01` met wachtwoord `{V2}` (sleutel-login volgt)
- Cloudflare: account wordt overgezet naar ict-beheer@ardenholt.nl

## 3. Openstaande punten

1. Upgrade naar Drupal 11 (offerte volgt).
2. reCAPTCHA-sleutels overzetten naar Google-account van de gemeente.
""",
    ),
    _t(
        "docs/overdracht/geocat-geoserver-handover.md",
        "t23_redacted",
        False,
        """# Handover: GeoServer cluster -- GeoCat BV to City of Ardenholt

## Credentials

All credentials were transferred via the City's Keeper shared folder on the handover date.

| System                        | Account       | Password        |
|-------------------------------|---------------|-----------------|
| GeoServer admin (gis-geo01)   | admin         | {V}             |
| PostGIS (pg-gis01)            | postgres      | {V2}            |
| GeoNetwork catalogue          | admin         | {V3}            |

## Open items

- Switch GeoServer authentication to the AD LDAP provider (planned Q3).
""",
    ),
    _t(
        "docs/overdracht/orzel-szkola-przekazanie.md",
        "t23_pw",
        True,
        """# Protokół przekazania: sieć szkoły "Orzeł" (dostawca: NetSerwis Sp. z o.o.)

Data: 17 stycznia. Obecni: T. Wiśniewski (NetSerwis), P. Nowak (ICT-beheer).

## Dostępy

- Kontroler UniFi (lokalny): https://10.42.0.5:8443, użytkownik `netserwis`, hasło `{V}`
- Drukarka Konica (panel admina): hasło `{V2}`
- Sieć Wi-Fi dla nauczycieli "Orzel-Kadra": klucz WPA2 `{V3}`

Hasła zostaną zmienione przez ICT-beheer po okresie gwarancyjnym (3 miesiące).
""",
    ),
    _t(
        "docs/helpdesk/tickets/INC0052214.txt",
        "t23_weak_pw",
        True,
        """TOPdesk melding INC0052214
Aanmelder: Bibliotheek Ardenholt, vestiging Noord (balie)
Categorie: Werkplek > Wachtwoord
Status: Afgemeld

--- Verzoek (09:12) ---
Goedemorgen, ik kan niet meer inloggen op de baliecomputer. Mijn account zegt "vergrendeld".
Groet, Anna

--- Actie 1e lijn (09:20, M. de Wit) ---
Account a.vermeulen ontgrendeld en wachtwoord gereset naar {V}
Gebruiker telefonisch geïnformeerd, moet bij eerste aanmelding wijzigen.

--- Afmelding (09:24) ---
Opgelost.
""",
    ),
    _t(
        "docs/helpdesk/tickets/INC0052388.txt",
        "t23_i18n",
        False,
        """TOPdesk melding INC0052388
Aanmelder: Team Belastingen
Categorie: Applicatie > BELIS
Status: In behandeling

--- Verzoek ---
Bij het inloggen in MijnBelastingen krijgen burgers de melding:
"{V}"
terwijl ze net een nieuw wachtwoord hebben ingesteld. Zie screenshot.

--- Actie 2e lijn ---
Klokverschil tussen de BELIS-webserver en ADFS (4 minuten). NTP hersteld op web-belis02.
""",
    ),
    _t(
        "docs/helpdesk/tickets/INC0053001-de.txt",
        "t23_pw",
        True,
        """TOPdesk Meldung INC0053001 (Partnerstadt Kleve, gemeinsame GIS-Plattform)
Melder: Stadtwerke Kleve, Abteilung Geodaten
Kategorie: GIS > Zugang
Status: Gelöst

--- Anfrage ---
Hallo, unser technischer Benutzer für den WFS-Abruf funktioniert seit dem Wochenende nicht
mehr. Benutzer: kleve_wfs. Das bisherige Passwort war {V}, wir haben es nicht geändert.
Bitte prüfen. Mit freundlichen Grüßen, J. Hoffmann

--- Aktion 2. Linie ---
Konto war nach 5 Fehlversuchen gesperrt (falsche Konfiguration in QGIS Server bei Kleve).
Entsperrt, Kennwort unverändert.
""",
    ),
    _t(
        "docs/helpdesk/tickets/INC0053120-pl.txt",
        "t23_redacted",
        False,
        """Zgłoszenie TOPdesk INC0053120
Zgłaszający: Szkoła "Orzeł", sekretariat
Kategoria: Moodle > Konto
Status: Zamknięte

--- Zgłoszenie ---
Dzień dobry, nauczycielka nie może zalogować się do Moodle. Podała hasło: {V}
Proszę o pomoc.

--- Działanie (1. linia) ---
Hasło usunięte z treści zgłoszenia zgodnie z polityką. Konto odblokowane, link do resetu
hasła wysłany na adres służbowy.
""",
    ),
    _t(
        "docs/chat/teams-export-ict-beheer-2025-02.txt",
        "t23_pw",
        True,
        """[2025-02-11 08:41] Pieter Nowak: morgen, wie heeft het wachtwoord van de sa op sql-legacy02? kwijtschelding doet het niet meer
[2025-02-11 08:43] Mark de Wit: staat in keeper toch?
[2025-02-11 08:43] Pieter Nowak: nee die entry is leeg sinds de migratie
[2025-02-11 08:47] Sanne de Boer: was dit niet {V}
[2025-02-11 08:47] Sanne de Boer: heb ik nog van de oude leverancier
[2025-02-11 08:52] Pieter Nowak: ja die werkt, dank. zet ik meteen in keeper
[2025-02-11 08:53] Mark de Wit: en daarna wijzigen graag, staat nu in deze chat 🙈
""",
    ),
    _t(
        "docs/chat/teams-export-gis-2025-03.txt",
        "t23_arcgis_token",
        True,
        """[2025-03-03 10:02] Ewa Kowalska: Hi, the Kleve colleagues need the cable layer for the trench planning today
[2025-03-03 10:05] Jeroen Smit: I can't share the service publicly. Quick fix: here's a token for the MapServer, valid 14 days
[2025-03-03 10:05] Jeroen Smit: {V}
[2025-03-03 10:06] Jeroen Smit: append as &token=... to the REST URL
[2025-03-03 10:09] Ewa Kowalska: thanks, forwarded 👍
[2025-03-03 10:31] Pieter Nowak: please don't paste tokens in Teams, use a named user for Kleve next time
""",
    ),
    _t(
        "docs/chat/teams-export-scada-2025-01.txt",
        "t23_teams_webhook",
        True,
        """[2025-01-20 14:12] Rik Jansen (Vialis): we willen storingen van de VRI-centrale ook in jullie Teams-kanaal zien
[2025-01-20 14:15] Pieter Nowak: kan, ik maak een incoming webhook aan op kanaal "Storingen VRI"
[2025-01-20 14:21] Pieter Nowak: {V}
[2025-01-20 14:22] Rik Jansen (Vialis): top, zetten we in ImFlow onder notificaties
[2025-01-20 14:30] Rik Jansen (Vialis): testbericht verstuurd, komt het door?
[2025-01-20 14:30] Pieter Nowak: ja 👍
""",
    ),
    _t(
        "docs/chat/teams-export-servicedesk-2025-03.txt",
        "t23_i18n",
        False,
        """[2025-03-18 09:01] Anna Vermeulen: de nieuwe melding bij inloggen is: "{V}"
[2025-03-18 09:03] Mark de Wit: klopt, dat is de nieuwe wachtwoordregel vanaf vandaag
[2025-03-18 09:04] Anna Vermeulen: ah oké, dan weet ik wat ik tegen collega's moet zeggen
[2025-03-18 09:06] Mark de Wit: staat ook op intranet onder ICT > Wachtwoorden
""",
    ),
    _t(
        "docs/chat/teams-export-ckan-2025-02.txt",
        "t23_uuid",
        False,
        """[2025-02-04 11:20] Lotte Visser: de resource van afvalcontainers is weg na de harvest??
[2025-02-04 11:24] Jeroen Smit: nee, nieuwe id: {V}
[2025-02-04 11:24] Jeroen Smit: oude was {V2}
[2025-02-04 11:26] Lotte Visser: ok, ik pas de ETL-config aan
""",
    ),
    _t(
        "docs/notebooks/woz-analyse.ipynb",
        "t23_url_pw",
        True,
        """{
 "cells": [
  {
   "cell_type": "markdown",
   "metadata": {},
   "source": ["# WOZ-analyse wijken 2025\\n", "Vergelijking WOZ-waarden per wijk met vorig jaar (voor de begroting)."]
  },
  {
   "cell_type": "code",
   "execution_count": 2,
   "metadata": {},
   "outputs": [],
   "source": [
    "import pandas as pd\\n",
    "import sqlalchemy as sa\\n",
    "engine = sa.create_engine(\\"oracle+oracledb://BELIS_RPT:{V}@ora-belis01.ardenholt.local:1521/?service_name=BELISP\\")\\n",
    "df = pd.read_sql(\\"select wijk, wozwaarde, peildatum from v_woz_wijk\\", engine)"
   ]
  },
  {
   "cell_type": "code",
   "execution_count": 3,
   "metadata": {},
   "outputs": [],
   "source": ["df.groupby(\\"wijk\\").wozwaarde.median().sort_values()"]
  }
 ],
 "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
    ),
    _t(
        "docs/notebooks/parkeren-bezetting.ipynb",
        "t23_ref_py_nb",
        False,
        """{
 "cells": [
  {
   "cell_type": "code",
   "execution_count": 1,
   "metadata": {},
   "outputs": [],
   "source": [
    "import os, ckanapi\\n",
    "token = {V}\\n",
    "ckan = ckanapi.RemoteCKAN(\\"https://data.ardenholt.nl\\", apikey=token)\\n",
    "res = ckan.action.datastore_search(resource_id=\\"parkeergarages-bezetting\\", limit=1000)"
   ]
  }
 ],
 "metadata": {},
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
    ),
]

# ---------------------------------------------------------------------------------------------
# More look-alikes in the same kinds of files
# ---------------------------------------------------------------------------------------------
TEMPLATES += [
    _t(
        "opendata-ckan/datapusher/.env",
        "t23_ref_sh",
        False,
        """# datapusher-plus (container app), waarden uit de Container Apps secrets
DATAPUSHER_SQLALCHEMY_URL=postgresql://datapusher:{V}@psql-ardh-ckan-prd.postgres.database.azure.com/datapusher_jobs
WRITE_ENGINE_URL=postgresql://ckan_default:{V2}@psql-ardh-ckan-prd.postgres.database.azure.com/datastore_default
CKAN_API_TOKEN={V3}
DATAPUSHER_SSL_VERIFY=true
""",
    ),
    _t(
        "opendata-api/afval-function/local.settings.json",
        "t23_kv_ref",
        False,
        """{
  "IsEncrypted": false,
  "Values": {
    "FUNCTIONS_WORKER_RUNTIME": "python",
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    "CkanApiToken": "{V}",
    "RovaApiKey": "{V2}",
    "SmtpPassword": "{V3}"
  }
}
""",
    ),
    _t(
        "infra-dsc/output/dc03.mof",
        "t23_cms",
        False,
        """/*
@TargetNode='dc03'
@GeneratedBy=dsc-install
@GenerationHost=util01
*/

instance of MSFT_Credential as $MSFT_Credential1ref
{
Password = "{V}";
 UserName = "Administrator";
};

instance of MSFT_Credential as $MSFT_Credential2ref
{
Password = "{V2}";
 UserName = "ARDENHOLT\\\\dsc-install";
};
""",
    ),
    _t(
        "ci/jenkins/home/credentials.xml",
        "t23_jenkins_enc",
        False,
        """<?xml version='1.1' encoding='UTF-8'?>
<com.cloudbees.plugins.credentials.SystemCredentialsProvider plugin="credentials@1371.vfee6b_095f0a_3">
  <domainCredentialsMap class="hudson.util.CopyOnWriteMap$Hash">
    <entry>
      <com.cloudbees.plugins.credentials.domains.Domain><specifications/></com.cloudbees.plugins.credentials.domains.Domain>
      <java.util.concurrent.CopyOnWriteArrayList>
        <com.cloudbees.plugins.credentials.impl.UsernamePasswordCredentialsImpl>
          <scope>GLOBAL</scope>
          <id>oracle-belis-rpt</id>
          <username>BELIS_RPT</username>
          <password>{V}</password>
        </com.cloudbees.plugins.credentials.impl.UsernamePasswordCredentialsImpl>
        <org.jenkinsci.plugins.plaincredentials.impl.StringCredentialsImpl>
          <scope>GLOBAL</scope>
          <id>ado-pat-pipelines</id>
          <secret>{V2}</secret>
        </org.jenkinsci.plugins.plaincredentials.impl.StringCredentialsImpl>
        <org.jenkinsci.plugins.plaincredentials.impl.StringCredentialsImpl>
          <scope>GLOBAL</scope>
          <id>teams-webhook-storingen</id>
          <secret>{V3}</secret>
        </org.jenkinsci.plugins.plaincredentials.impl.StringCredentialsImpl>
      </java.util.concurrent.CopyOnWriteArrayList>
    </entry>
  </domainCredentialsMap>
</com.cloudbees.plugins.credentials.SystemCredentialsProvider>
""",
    ),
    _t(
        "vera-permits/domains/vera_domain/config/config.xml",
        "t23_weblogic_enc",
        False,
        """<?xml version="1.0" encoding="UTF-8"?>
<domain xmlns="http://xmlns.oracle.com/weblogic/domain">
  <name>vera_domain</name>
  <domain-version>14.1.1.0.0</domain-version>
  <security-configuration>
    <name>vera_domain</name>
    <credential-encrypted>{V}</credential-encrypted>
    <node-manager-username>nodemanager</node-manager-username>
    <node-manager-password-encrypted>{V2}</node-manager-password-encrypted>
  </security-configuration>
  <server>
    <name>AdminServer</name>
    <listen-address>vera-adm01.ardenholt.local</listen-address>
  </server>
  <embedded-ldap>
    <name>vera_domain</name>
    <credential-encrypted>{V3}</credential-encrypted>
  </embedded-ldap>
</domain>
""",
    ),
    _t(
        "netwerk-configs/fortigate/fgt-werf-01_users.conf",
        "t23_fortigate_enc",
        False,
        """config user local
    edit "hydroflex-svc"
        set type password
        set two-factor fortitoken
        set fortitoken "FTKMOB4A7C3E9D21"
        set email-to "service@hydroflex.eu"
        set passwd {V}
    next
    edit "vialis-svc"
        set type password
        set two-factor fortitoken
        set passwd {V2}
    next
end
config user radius
    edit "NPS01"
        set server "10.10.1.21"
        set secret {V3}
    next
end
""",
    ),
    _t(
        "platform/helm/ckan/values.yaml",
        "t23_placeholder",
        False,
        """# Default values for the ckan chart (Ardenholt fork). Override per environment.
replicaCount: 1
image:
  repository: acrardh.azurecr.io/ckan-ardenholt
  tag: ""
ckan:
  siteUrl: https://data.example.com
  sysadminName: ckan_admin
  sysadminPassword: "{V}"
  sessionSecret: "{V2}"
  jwtSecret: "{V3}"
postgresql:
  enabled: false
  existingSecret: ckan-db
""",
    ),
    _t(
        "netwerk-configs/freeradius/tests/test_clients.py",
        "t23_fake",
        False,
        """\"\"\"Checks that clients.conf renders from the Ansible template (molecule verify).\"\"\"

import re

SAMPLE = '''
client unifi-controller {
\tipaddr = 10.10.1.60
\tsecret = {V}
}
client switches-beheer {
\tipaddr = 10.10.0.0/24
\tsecret = {V2}
}
'''


def test_every_client_has_secret():
    blocks = re.findall(r"client (\\S+) \\{(.*?)\\}", SAMPLE, re.S)
    assert blocks
    for _name, body in blocks:
        assert "secret =" in body
""",
    ),
    _t(
        "infra-ansible/roles/moodle/defaults/main.yml",
        "t23_ref_ansible",
        False,
        """---
moodle_version: "4.4"
moodle_db_type: pgsql
moodle_db_host: "{{ groups['pg_moodle'][0] }}"
moodle_db_user: moodle
moodle_db_password: "{V}"
moodle_admin_password: "{V2}"
moodle_redis_password: "{V3}"
moodle_cron_minute: "*/1"
""",
    ),
    _t(
        "infra-terraform/modules/sql/variables.tf",
        "t23_ref_tf",
        False,
        """variable "administrator_login" {
  type    = string
  default = "sqladmin-ardh"
}

variable "administrator_login_password" {
  type      = string
  sensitive = true
  # komt uit Key Vault in de root module
}

locals {
  admin_password = coalesce({V}, {V2})
}
""",
    ),
    _t(
        "infra-terraform/arm/permits-appservice.parameters.json",
        "t23_uuid",
        False,
        """{
  "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentParameters.json#",
  "contentVersion": "1.0.0.0",
  "parameters": {
    "appServicePlanId": {
      "value": "/subscriptions/{V}/resourceGroups/rg-ardh-prd-weu/providers/Microsoft.Web/serverfarms/asp-ardh-prd"
    },
    "userAssignedIdentityClientId": { "value": "{V2}" },
    "keyVaultSecretUri": { "value": "https://kv-ardh-prd.vault.azure.net/secrets/permits-db/{V3}" }
  }
}
""",
    ),
    _t(
        "portaal-drupal/CHANGELOG.md",
        "t23_git_sha",
        False,
        """# Changelog burgerportaal

## 24.11.2
- Afvalkalender: ROVA-koppeling via nieuwe API (commit {V}).
- reCAPTCHA-sleutels uit config/sync gehaald (commit {V2}).

## 24.11.1
- Hotfix login met DigiD na certificaatwissel (commit {V3}).
""",
    ),
    _t(
        "koha-bibliotheek/docs/ontwikkelen.md",
        "t23_doc_pw",
        False,
        """# Koha lokaal ontwikkelen (koha-testing-docker)

```sh
git clone https://gitlab.com/koha-community/koha-testing-docker.git
cd koha-testing-docker && cp env/defaults.env .env
ktd up
```

Staff interface: http://localhost:8081, gebruiker `koha`, wachtwoord `{V}` (standaard van
koha-testing-docker, alleen lokaal). Database: `mysql://koha_kohadev:{V2}@db.test:3306/koha_kohadev`.
""",
    ),
    _t(
        "scada-nodered/package.json",
        "t23_sri",
        False,
        """{
  "name": "scada-nr01",
  "description": "Node-RED project gemalen en VRI",
  "version": "3.1.0",
  "private": true,
  "dependencies": {
    "node-red": "3.1.9",
    "node-red-contrib-modbus": "5.30.0",
    "node-red-dashboard": "3.6.5"
  },
  "lockfileIntegrity": {
    "node-red": "{V}",
    "node-red-contrib-modbus": "{V2}"
  }
}
""",
    ),
    _t(
        "permits-dotnet/Ardenholt.Permits.Web/Views/Account/Login.nl.resx",
        "t23_i18n",
        False,
        """<?xml version="1.0" encoding="utf-8"?>
<root>
  <data name="PasswordLabel" xml:space="preserve">
    <value>Wachtwoord</value>
  </data>
  <data name="PasswordHelp" xml:space="preserve">
    <value>{V}</value>
  </data>
  <data name="TokenExpired" xml:space="preserve">
    <value>{V2}</value>
  </data>
  <data name="LoginButton" xml:space="preserve">
    <value>Inloggen</value>
  </data>
</root>
""",
    ),
    _t(
        "identity/ldap/koha-ldap.xml",
        "t23_placeholder",
        False,
        """<!-- Koha LDAP-blok (in koha-conf.xml) -- sjabloon voor nieuwe instanties -->
<useldapserver>1</useldapserver>
<ldapserver id="ldapserver">
  <hostname>ldaps://dc01.ardenholt.local</hostname>
  <base>OU=Medewerkers,DC=ardenholt,DC=local</base>
  <user>CN=svc_koha_ldap,OU=Serviceaccounts,OU=Beheer,DC=ardenholt,DC=local</user>
  <pass>{V}</pass>
  <replicate>1</replicate>
  <update>1</update>
  <auth_by_bind>1</auth_by_bind>
  <mapping>
    <firstname is="givenName"></firstname>
    <surname is="sn"></surname>
    <email is="mail"></email>
  </mapping>
</ldapserver>
""",
    ),
    _t(
        "docs/helpdesk/tickets/INC0053377.txt",
        "t23_case_no",
        False,
        """TOPdesk melding INC0053377
Aanmelder: Team Vergunningen
Categorie: Applicatie > VERA
Status: Afgemeld

--- Verzoek ---
Aanvraag {V} blijft hangen op status "In behandeling" na het uploaden van de tekeningen.
Ook bij {V2}. Kunnen jullie kijken?

--- Actie 2e lijn ---
Blob-upload faalde door verlopen SAS; nieuwe SAS in Key Vault gezet (wijziging {V3}).
""",
    ),
    _t(
        "docs/chat/teams-export-netwerk-2025-01.txt",
        "t23_redacted",
        False,
        """[2025-01-09 15:10] Tomasz Wiśniewski (NetSerwis): what is the RADIUS secret for the new switch in school Orzeł?
[2025-01-09 15:12] Pieter Nowak: {V}
[2025-01-09 15:12] Pieter Nowak: sorry, auto-redacted by the DLP policy, I'll share it via Keeper
[2025-01-09 15:20] Tomasz Wiśniewski (NetSerwis): got it in Keeper, thanks. Switch is authenticating now
""",
    ),
]
