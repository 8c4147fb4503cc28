"""Blind part ``tune28``: a regional retail bank and brokerage, Ostrava-Lisbon Banca (OLB, with
offices in Ostrava and Prague, Lisbon and Porto, São Paulo and Mexico City), with its vendors,
counterparties and auditors. Files are core banking batch jobs (JCL and PROCs, COBOL programs and
copybooks, Control-M exports, DB2 and Oracle scripts, db2cli.ini, wallets and tnsnames, Java
bridges over DB2, Oracle and IBM MQ), the mobile banking app (Kotlin/Android Gradle builds and
local properties, Swift/iOS with fastlane and App Store Connect keys, React Native with .env files
and package locks, Firebase admin keys), the online brokerage (Python and C++ trading services,
QuickFIX session files and FIX message logs, market data vendor keys, notebooks), payment rails
(SWIFT Alliance LAU keys and MX/MT samples, SEPA over EBICS, PIX and SPEI/STP gateways, Thales
payShield and Luna HSM configs and key ceremony notes, card processor keys, webhooks and test
cards), IBM MQ and Kafka clients and connectors, Windows domain scripts (PowerShell, batch,
VBScript, GPO preference exports, unattend files), SAS and R analytics, Airflow DAGs and config,
Jenkins and Azure DevOps pipelines, Terraform, Kubernetes and Helm for Azure, plus auditors'
handover notes, Confluence exports, internal wikis, runbooks and chat exports in Czech,
Portuguese, Spanish and English. Written blind (without seeing the scanner, its rules or other
parts' templates).

Look-alikes sit in the same kinds of files under the same key names: password hashes and verifiers
(Oracle ``S:``/``T:``, bcrypt, LDAP ``{SSHA}``, PBKDF2, argon2, sha512-crypt), values encrypted at
rest (Jasypt ``ENC(...)``, Vault transit, SOPS, sealed secrets, Ansible Vault, Jenkins
``{AQAAAB...}``, DPAPI ``ConvertFrom-SecureString`` blobs, encrypted PEM keys, HSM keys under the
LMK and encrypted PIN blocks), references to environment variables and secret stores in every
language of the estate (JCL symbolics and Control-M variables, SAS macro variables, R
``Sys.getenv``, Kotlin, Swift, React Native config, C++ ``getenv``, PowerShell, Airflow templates,
Jenkins and Azure DevOps variables, Terraform and Key Vault references), placeholders and
redactions in four languages, public material (certificates, public and SSH keys, client-side
card processor keys, Mapbox ``pk.`` tokens, Firebase app ids, OAuth client ids), identifiers
shaped like secrets (IBANs and CLABEs with valid check digits, BICs, SWIFT UETRs, PIX end-to-end
ids, ISINs, FIX ClOrdIDs, key check values, masked and documented test card numbers, Azure GUIDs,
Windows SIDs, digests and lockfile checksums), UI text about passwords and PINs in Czech,
Portuguese and Spanish, documented example credentials and credentials on documentation hosts,
and test values that say they are fake.
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
B32L = "abcdefghijklmnopqrstuvwxyz234567"
B62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
PW_SYMBOLS = "!#%^*-_=+.@"
CRYPT64 = "./" + ALNUM
RACF_CHARS = UPNUM + "#@"


class Tune28Values(evalset.Values):
    """Value generators of the tune28 part; every name starts with ``t28_``."""

    def __init__(self, seed: int, flavour: str) -> None:
        super().__init__(seed, flavour)
        self.words = [
            "vltava",
            "ostrava",
            "lisboa",
            "tejo",
            "alfama",
            "sintra",
            "beskydy",
            "morava",
            "karlin",
            "hornik",
            "koruna",
            "saudade",
            "ipanema",
            "paulista",
            "zocalo",
            "jalisco",
            "oaxaca",
            "bacalhau",
            "chapultepec",
            "azulejo",
        ]
        self.users = [
            "svc_core",
            "db2bat",
            "ledger_app",
            "mq_app",
            "pix_gw",
            "spei_gw",
            "sepa_gw",
            "fix_oms",
            "md_feed",
            "sas_dwh",
            "airflow",
            "ado_agent",
        ]

    # ------------------------------------------------------------------ helpers (not slots)
    def t28_util_b64(self, n: int, urlsafe: bool = False, pad: bool = True) -> str:
        raw = self.rng.randbytes(n)
        text = (base64.urlsafe_b64encode(raw) if urlsafe else base64.b64encode(raw)).decode()
        return text if pad else text.rstrip("=")

    def t28_util_crc_token(self, prefix: str) -> str:
        body = self.s(30, ALNUM)
        crc = zlib.crc32(body.encode())
        check = ""
        while crc:
            crc, rest = divmod(crc, 62)
            check = B62[rest] + check
        return f"{prefix}_{body}{check.rjust(6, '0')}"

    def t28_util_armor(self, label: str, der: bytes, width: int = 64) -> str:
        body = base64.b64encode(der).decode()
        rows = [body[i : i + width] for i in range(0, len(body), width)]
        return f"-----BEGIN {label}-----\n" + "\n".join(rows) + f"\n-----END {label}-----"

    def t28_util_uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def t28_util_mod97(self, country: str, bban: str) -> str:
        moved = bban + country + "00"
        numeric = "".join(str(int(c, 36)) for c in moved)
        check = 98 - int(numeric) % 97
        return f"{country}{check:02d}{bban}"

    # ------------------------------------------------------------------ positives: passwords
    def t28_pw(self) -> str:
        shape = self.rng.randrange(7)
        word = self.pick(self.words)
        if shape == 0:
            return word.capitalize() + str(self.rng.randrange(10, 9999)) + self.pick(list("!#%*."))
        if shape == 1:
            return self.s(1, string.ascii_letters) + self.s(
                self.rng.randrange(12, 20), ALNUM + PW_SYMBOLS
            )
        if shape == 2:
            other = self.pick([w for w in self.words if w != word])
            return f"{word.capitalize()}-{other}-{self.s(2, DIGITS)}"
        if shape == 3:
            return "Olb" + self.s(10, ALNUM) + self.pick(list("!#%"))
        if shape == 4:
            return self.s(16, ALNUM)
        if shape == 5:
            leet = word.replace("a", "@").replace("o", "0").replace("i", "1")
            return leet[0].upper() + leet[1:] + "#" + self.s(3, DIGITS)
        return (
            self.s(3, string.ascii_uppercase)
            + self.s(5, DIGITS)
            + self.s(4, string.ascii_lowercase)
        )

    def t28_weak_pw(self) -> str:
        shape = self.rng.randrange(4)
        if shape == 0:
            return self.pick(
                [
                    "Heslo123",
                    "heslo1",
                    "Senha@123",
                    "senha2024",
                    "Contrasena1",
                    "Contraseña2024",
                    "Banca2024!",
                    "Welcome1",
                    "Passw0rd!",
                    "admin123",
                    "olbanca1",
                    "Qwerty123",
                ]
            )
        if shape == 1:
            return self.pick(["Ostrava", "Lisboa", "Porto", "Brno", "Santos", "Puebla"]) + str(
                self.rng.randrange(2015, 2026)
            )
        if shape == 2:
            return self.pick(self.words) + self.pick(["1", "123", "2024", "!"])
        return self.pick(["Jaro", "Leto", "Verao", "Inverno", "Primavera", "Otono"]) + str(
            self.rng.randrange(2019, 2026)
        )

    def t28_racf_pw(self) -> str:
        if self.rng.randrange(3) == 0:
            return self.pick(["OLB", "BNK", "CORE", "DB2"]) + self.s(4, DIGITS + "#@")
        return self.s(1, string.ascii_uppercase) + self.s(7, RACF_CHARS)

    def t28_url_pw(self) -> str:
        if self.rng.randrange(2):
            return self.pick(self.words).capitalize() + self.s(4, DIGITS)
        return self.s(1, string.ascii_letters) + self.s(self.rng.randrange(13, 22), ALNUM + "-_.")

    def t28_oracle_pw(self) -> str:
        body = self.s(1, string.ascii_uppercase) + self.s(self.rng.randrange(9, 15), ALNUM)
        cut = self.rng.randrange(3, len(body))
        return body[:cut] + self.pick(["#", "_"]) + body[cut:] + self.s(2, DIGITS)

    def t28_fix_pw(self) -> str:
        shape = self.rng.randrange(3)
        if shape == 0:
            return self.s(8, ALNUM)
        if shape == 1:
            return self.pick(["olbfix", "brkfix", "Fix"]) + self.s(4, DIGITS)
        return self.s(12, ALNUM + "!#")

    def t28_b64_pw(self) -> str:
        return base64.b64encode(self.t28_pw().encode()).decode()

    def t28_basic(self) -> str:
        user = self.pick([*self.users, "svc-ci", "olb-deploy"])
        return base64.b64encode(f"{user}:{self.t28_pw()}".encode()).decode()

    # ------------------------------------------------------------------ positives: payments
    def t28_hsm_component(self) -> str:
        groups = self.pick([8, 8, 12])
        return " ".join(self.s(4, HEXU) for _ in range(groups))

    def t28_swift_lau(self) -> str:
        return self.s(16, ALNUM)

    def t28_hmac_hex(self) -> str:
        return self.s(64, HEXU)

    def t28_card_key(self) -> str:
        shape = self.rng.randrange(5)
        if shape == 0:
            head = "AQE" + self.s(1, "uyr") + "hmfx" + self.s(56, ALNUM + "+/")
            return f"{head}==-{self.t28_util_b64(32)}-{self.s(16, ALNUM + '<>,;')}"
        if shape == 1:
            return "sk_" + self.t28_util_uuid()
        if shape == 2:
            return (
                f"APP_USR-{self.s(16, DIGITS)}-{self.s(6, DIGITS)}-"
                f"{self.s(32, HEX)}-{self.s(9, DIGITS)}"
            )
        if shape == 3:
            return "key_" + self.s(27, ALNUM)
        return self.t28_util_b64(32)

    def t28_mp_token(self) -> str:
        return (
            f"APP_USR-{self.s(16, DIGITS)}-{self.s(6, DIGITS)}-"
            f"{self.s(32, HEX)}-{self.s(9, DIGITS)}"
        )

    def t28_adyen_key(self) -> str:
        head = "AQE" + self.s(1, "uyr") + "hmfx" + self.s(56, ALNUM + "+/")
        return f"{head}==-{self.t28_util_b64(32)}-{self.s(16, ALNUM + '<>,;')}"

    def t28_client_secret(self) -> str:
        shape = self.rng.randrange(3)
        if shape == 0:
            return self.s(self.rng.choice([32, 40, 48]), ALNUM)
        if shape == 1:
            return self.t28_util_uuid()
        return self.s(8, ALNUM) + "-" + self.s(16, URLSAFE) + "-" + self.s(12, ALNUM)

    # ------------------------------------------------------------------ positives: brokerage
    def t28_mdata_key(self) -> str:
        shape = self.rng.randrange(6)
        if shape == 0:
            return self.s(32, ALNUM)
        if shape == 1:
            return self.s(16, UPNUM)
        if shape == 2:
            return "c" + self.s(19, LOWNUM)
        if shape == 3:
            return self.s(40, HEX)
        if shape == 4:
            return "sk_" + self.s(32, HEX)
        return self.s(32, HEX)

    def t28_django_key(self) -> str:
        return self.s(50, LOWNUM + "!@#%^&*(-_=+)")

    def t28_hex_secret(self) -> str:
        return self.s(64, HEX)

    def t28_jwt(self) -> str:
        def seg(obj: dict[str, object]) -> str:
            raw = json.dumps(obj, separators=(",", ":")).encode()
            return base64.urlsafe_b64encode(raw).decode().rstrip("=")

        iat = 1714000000 + self.rng.randrange(10**7)
        header = seg({"alg": "HS256", "typ": "JWT"})
        payload = seg(
            {
                "iss": "https://auth.olbanca.cz",
                "sub": self.pick(self.users),
                "aud": self.pick(["payments-gw", "oms", "core-bridge"]),
                "iat": iat,
                "exp": iat + 31536000,
            }
        )
        return f"{header}.{payload}.{self.t28_util_b64(32, urlsafe=True, pad=False)}"

    # ------------------------------------------------------------------ positives: platforms
    def t28_ado_pat(self) -> str:
        return self.s(52, B32L)

    def t28_azure_sa_key(self) -> str:
        return self.t28_util_b64(64)

    def t28_sb_key(self) -> str:
        return self.t28_util_b64(32)

    def t28_azure_secret(self) -> str:
        return self.s(3, ALNUM + "_~.") + self.s(1, DIGITS) + "Q~" + self.s(34, ALNUM + "_~.-")

    def t28_jenkins_token(self) -> str:
        return "11" + self.s(32, HEX)

    def t28_github(self) -> str:
        return self.t28_util_crc_token(self.pick(["ghp", "ghp", "gho"]))

    def t28_artifactory(self) -> str:
        return "AKCp8" + self.s(68, ALNUM)

    def t28_nuget(self) -> str:
        return "oy2" + self.s(43, LOWNUM)

    def t28_sonar(self) -> str:
        return self.pick(["squ_", "sqp_", "sqa_"]) + self.s(40, HEX)

    def t28_confluent_secret(self) -> str:
        return self.s(64, ALNUM + "+/")

    def t28_slack_webhook(self) -> str:
        return (
            f"https://hooks.slack.com/services/T{self.s(10, UPNUM)}/B{self.s(10, UPNUM)}/"
            f"{self.s(24, ALNUM)}"
        )

    def t28_teams_webhook(self) -> str:
        ids = [self.t28_util_uuid() for _ in range(3)]
        return (
            f"https://olbanca.webhook.office.com/webhookb2/{ids[0]}@{ids[1]}"
            f"/IncomingWebhook/{self.s(32, HEX)}/{ids[2]}"
        )

    def t28_fernet(self) -> str:
        return self.t28_util_b64(32, urlsafe=True)

    def t28_firebase_server(self) -> str:
        return f"AAAA{self.s(7, URLSAFE)}:APA91b{self.s(134, URLSAFE)}"

    def t28_google_key(self) -> str:
        return "AIza" + self.s(35, URLSAFE)

    def t28_twilio(self) -> str:
        return self.s(32, HEX)

    def t28_sendgrid(self) -> str:
        return f"SG.{self.s(22, URLSAFE)}.{self.s(43, URLSAFE)}"

    def t28_vault_token(self) -> str:
        return "hvs." + self.s(24, ALNUM)

    def t28_mapbox_sk(self) -> str:
        payload = json.dumps(
            {"u": "olbanca", "a": "cl" + self.s(23, LOWNUM)}, separators=(",", ":")
        )
        body = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
        return f"sk.{body}.{self.s(22, URLSAFE)}"

    def t28_cpassword(self) -> str:
        return self.t28_util_b64(16 * self.rng.randrange(2, 4)).rstrip("=")

    def t28_aws_pair(self) -> str:
        key_id = "AKIA" + self.s(16, string.ascii_uppercase + "234567")
        secret = self.s(1, ALNUM) + self.s(39, ALNUM + "/+")
        return f"aws_access_key_id = {key_id}\naws_secret_access_key = {secret}"

    def t28_b64_secret(self) -> str:
        return base64.b64encode(self.pick([self.t28_pw(), self.t28_mdata_key()]).encode()).decode()

    # ------------------------------------------------------------------ positives: keys
    def t28_rsa_pem(self) -> str:
        der = bytes.fromhex("308204a40201000282010100") + self.rng.randbytes(1180)
        return self.t28_util_armor("RSA PRIVATE KEY", der)

    def t28_pkcs8_pem(self) -> str:
        head = "308204be020100300d06092a864886f70d0101010500048204a8308204a40201000282010100"
        return self.t28_util_armor("PRIVATE KEY", bytes.fromhex(head) + self.rng.randbytes(1180))

    def t28_p8_key(self) -> str:
        der = (
            bytes.fromhex(
                "308187020100301306072a8648ce3d020106082a8648ce3d030107046d306b0201010420"
            )
            + self.rng.randbytes(32)
            + bytes.fromhex("a14403420004")
            + self.rng.randbytes(64)
        )
        return self.t28_util_armor("PRIVATE KEY", der)

    def t28_pk_json(self) -> str:
        return self.t28_pkcs8_pem().replace("\n", "\\n") + "\\n"

    def t28_openssh(self) -> str:
        pub = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + self.rng.randbytes(32)
        raw = (
            b"openssh-key-v1\x00"
            + b"\x00\x00\x00\x04none" * 2
            + b"\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x33"
            + pub
            + b"\x00\x00\x00\x90"
            + self.rng.randbytes(144)
        )
        return self.t28_util_armor("OPENSSH PRIVATE KEY", raw, width=70)

    # ------------------------------------------------------------------ negatives: payments ids
    def t28_kcv(self) -> str:
        return self.s(6, HEXU)

    def t28_lmk_key(self) -> str:
        if self.rng.randrange(2):
            return "U" + self.s(32, HEXU)
        return "T" + self.s(48, HEXU)

    def t28_pinblock(self) -> str:
        return self.s(16, HEXU)

    def t28_iban(self) -> str:
        country = self.pick(["CZ", "PT", "BR"])
        if country == "CZ":
            bban = self.pick(["0800", "0300", "5500", "2010"]) + self.s(16, DIGITS)
        elif country == "PT":
            bban = self.pick(["0035", "0033", "0007", "0010"]) + self.s(17, DIGITS)
        else:
            bban = self.s(13, DIGITS) + self.s(10, DIGITS) + "C" + self.s(1, "123")
        return self.t28_util_mod97(country, bban)

    def t28_clabe(self) -> str:
        body = self.pick(["002", "012", "014", "021", "646"]) + self.s(14, DIGITS)
        weights = [3, 7, 1] * 6
        total = sum(int(d) * w % 10 for d, w in zip(body, weights, strict=False))
        return body + str((10 - total % 10) % 10)

    def t28_bic(self) -> str:
        return self.pick(
            [
                "OLBACZPPXXX",
                "OLBAPTPL",
                "OLBABRSPXXX",
                "OLBAMXMM",
                "KOMBCZPP",
                "CEKOCZPP",
                "CGDIPTPL",
                "BCOMPTPL",
                "ITAUBRSP",
                "BRASBRRJ",
                "BNMXMXMM",
                "BCMRMXMM",
                "DEUTDEFF",
            ]
        )

    def t28_uetr(self) -> str:
        return self.t28_util_uuid()

    def t28_pix_e2e(self) -> str:
        stamp = f"2024{self.rng.randrange(1, 13):02d}{self.rng.randrange(1, 29):02d}"
        stamp += f"{self.rng.randrange(24):02d}{self.rng.randrange(60):02d}"
        return (
            "E"
            + self.pick(["18236120", "60701190", "00000000", "31872495"])
            + stamp
            + self.s(11, ALNUM)
        )

    def t28_isin(self) -> str:
        country = self.pick(["CZ", "PT", "BR", "MX", "US"])
        if country == "CZ":
            body = "CZ000" + self.s(6, DIGITS)
        elif country == "PT":
            body = "PT" + self.s(3, string.ascii_uppercase) + "0AM" + self.s(3, DIGITS)
        elif country == "BR":
            body = "BR" + self.s(4, string.ascii_uppercase) + "ACN" + self.pick(["OR", "PR"])
        elif country == "MX":
            body = "MX01" + self.s(2, string.ascii_uppercase) + self.s(4, DIGITS) + "0"
        else:
            body = "US" + self.s(9, DIGITS)
        digits = "".join(str(int(c, 36)) for c in body)
        total = 0
        for i, ch in enumerate(reversed(digits)):
            d = int(ch)
            if i % 2 == 0:
                d *= 2
                d = d - 9 if d > 9 else d
            total += d
        return body + str((10 - total % 10) % 10)

    def t28_masked_pan(self) -> str:
        bin6 = self.pick(["411111", "535522", "516292", "450995", "376680", "589657"])
        return bin6 + "******" + self.s(4, DIGITS)

    def t28_test_pan(self) -> str:
        return self.pick(
            [
                "4111111111111111",
                "5555555555554444",
                "4000000000000002",
                "378282246310005",
                "5105105105105100",
                "4012888888881881",
                "2223003122003222",
                "6011111111111117",
            ]
        )

    def t28_clordid(self) -> str:
        return "OLB" + f"2406{self.rng.randrange(10, 29)}" + self.s(10, UPNUM)

    # ------------------------------------------------------------------ negatives: digests, ids
    def t28_digest(self) -> str:
        return hashlib.sha256(self.rng.randbytes(16)).hexdigest()

    def t28_sri(self) -> str:
        return "sha512-" + self.t28_util_b64(64)

    def t28_docker_digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.rng.randbytes(16)).hexdigest()

    def t28_git_sha(self) -> str:
        return hashlib.sha1(self.rng.randbytes(16)).hexdigest()

    def t28_guid(self) -> str:
        return self.t28_util_uuid()

    def t28_gpo_guid(self) -> str:
        return "{" + self.t28_util_uuid().upper() + "}"

    def t28_sid(self) -> str:
        parts = [str(self.rng.randrange(10**9, 4 * 10**9)) for _ in range(3)]
        return "S-1-5-21-" + "-".join(parts) + "-" + str(self.rng.randrange(1100, 9000))

    def t28_trace_id(self) -> str:
        return self.s(32, HEX)

    def t28_firebase_app_id(self) -> str:
        return f"1:{self.s(12, DIGITS)}:{self.pick(['android', 'ios', 'web'])}:{self.s(16, HEX)}"

    def t28_google_client_id(self) -> str:
        return f"{self.s(12, DIGITS)}-{self.s(32, LOWNUM)}.apps.googleusercontent.com"

    def t28_pub_client_key(self) -> str:
        shape = self.rng.randrange(4)
        if shape == 0:
            return self.pick(["live_", "test_"]) + self.s(32, UPNUM)
        if shape == 1:
            return "pk_" + self.t28_util_uuid()
        if shape == 2:
            payload = json.dumps(
                {"u": "olbanca", "a": "cl" + self.s(23, LOWNUM)}, separators=(",", ":")
            )
            body = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
            return f"pk.{body}.{self.s(22, URLSAFE)}"
        return "APP_USR-" + self.t28_util_uuid()

    # ------------------------------------------------------------------ negatives: hashes, encrypted
    def t28_pw_hash(self) -> str:
        shape = self.rng.randrange(5)
        if shape == 0:
            return "$2b$12$" + self.s(53, CRYPT64)
        if shape == 1:
            return "{SSHA}" + self.t28_util_b64(24)
        if shape == 2:
            return f"pbkdf2_sha256$720000${self.s(22, ALNUM)}${self.t28_util_b64(32)}"
        if shape == 3:
            salt = self.t28_util_b64(16, pad=False)
            return f"$argon2id$v=19$m=65536,t=3,p=4${salt}${self.t28_util_b64(32, pad=False)}"
        return f"$6$rounds=656000${self.s(16, CRYPT64)}${self.s(86, CRYPT64)}"

    def t28_oracle_verifier(self) -> str:
        return f"S:{self.s(60, HEXU)};T:{self.s(160, HEXU)}"

    def t28_enc_value(self) -> str:
        shape = self.rng.randrange(3)
        if shape == 0:
            return f"ENC({self.t28_util_b64(self.rng.choice([32, 48]))})"
        if shape == 1:
            return "vault:v1:" + self.t28_util_b64(self.rng.choice([28, 44, 60]))
        data = self.t28_util_b64(self.rng.randrange(12, 36))
        return (
            f"ENC[AES256_GCM,data:{data},iv:{self.t28_util_b64(32)},"
            f"tag:{self.t28_util_b64(16)},type:str]"
        )

    def t28_jenkins_enc(self) -> str:
        return "{AQAAABAAAAAQ" + self.t28_util_b64(self.rng.choice([36, 48, 60])) + "}"

    def t28_mvn_enc(self) -> str:
        return "{" + self.t28_util_b64(self.rng.choice([24, 32])) + "}"

    def t28_dpapi(self) -> str:
        return "01000000d08c9ddf0115d1118c7a00c04fc297eb01000000" + self.s(
            self.rng.choice([364, 428, 492]), HEX
        )

    def t28_sealed(self) -> str:
        return "AgB" + self.t28_util_b64(self.rng.choice([420, 540]))

    def t28_ansible_vault(self) -> str:
        body = self.s(80 * 5, HEX)
        return "$ANSIBLE_VAULT;1.1;AES256\n" + "\n".join(
            body[i : i + 80] for i in range(0, len(body), 80)
        )

    def t28_enc_pem(self) -> str:
        head = "3082051c304e06092a864886f70d01050d3041302906092a864886f70d01050c301c0408"
        return self.t28_util_armor(
            "ENCRYPTED PRIVATE KEY", bytes.fromhex(head) + self.rng.randbytes(1240)
        )

    # ------------------------------------------------------------------ negatives: public material
    def t28_cert(self) -> str:
        rng = self.rng
        head = bytes([0x30, 0x82, 0x03, rng.randrange(0x80, 0x100), 0x30, 0x82, 0x02])
        head += bytes([rng.randrange(0x60, 0x100), 0xA0, 0x03, 0x02, 0x01, 0x02, 0x02, 0x14])
        return self.t28_util_armor("CERTIFICATE", head + rng.randbytes(880))

    def t28_pubkey(self) -> str:
        head = "30820122300d06092a864886f70d01010105000382010f003082010a0282010100"
        der = bytes.fromhex(head) + self.rng.randbytes(256) + bytes.fromhex("0203010001")
        return self.t28_util_armor("PUBLIC KEY", der)

    def t28_ssh_pub(self) -> str:
        blob = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + self.rng.randbytes(32)
        who = self.pick(
            ["jenkins@olb-build01", "svc_sftp@pay-gw02", "ops@jump-lis", "deploy@ado-agent"]
        )
        return f"ssh-ed25519 {base64.b64encode(blob).decode()} {who}"

    # ------------------------------------------------------------------ negatives: references
    def t28_py_ref(self) -> str:
        return self.pick(
            [
                'os.environ["MD_API_KEY"]',
                'os.getenv("PIX_CLIENT_SECRET")',
                'os.environ.get("FIX_PASSWORD", "")',
                "settings.SPEI_KEY_PASSPHRASE",
                'client.get_secret("olb-md-polygon").value',
                'Variable.get("refinitiv_app_key")',
            ]
        )

    def t28_java_ref(self) -> str:
        return self.pick(
            [
                'System.getenv("DB2_PASSWORD")',
                'System.getenv("DB2_TRUSTSTORE_PASSWORD")',
                'props.getProperty("db2.password")',
                'secretClient.getSecret("db2-batch-password").getValue()',
                'vault.logical().read("secret/core/db2").getData().get("password")',
            ]
        )

    def t28_kotlin_ref(self) -> str:
        return self.pick(
            [
                'System.getenv("OLB_KEYSTORE_PASSWORD") ?: ""',
                "BuildConfig.PIX_API_KEY",
                'providers.gradleProperty("OLB_STORE_PASSWORD").get()',
                'localProps.getProperty("olb.keyPassword")',
                'secretClient.getSecret("pix-client-secret").value',
                'System.getenv("PIX_CERT_PASSWORD").orEmpty()',
            ]
        )

    def t28_swift_ref(self) -> str:
        return self.pick(
            [
                'ProcessInfo.processInfo.environment["OLB_API_KEY"] ?? ""',
                'Bundle.main.object(forInfoDictionaryKey: "OLBApiKey") as? String ?? ""',
                'KeychainStore.shared.string(forKey: "session.refresh")',
                "Secrets.cardProcessorClientKey",
            ]
        )

    def t28_rn_ref(self) -> str:
        return self.pick(
            [
                "Config.API_KEY",
                "Config.MAPBOX_PUBLIC_TOKEN",
                "process.env.EXPO_PUBLIC_API_URL",
                "await SecureStore.getItemAsync('refreshToken')",
                "await Keychain.getGenericPassword()",
            ]
        )

    def t28_cpp_ref(self) -> str:
        return self.pick(
            [
                'std::getenv("FIX_B3_PASSWORD")',
                'cfg.get<std::string>("fix.password")',
                'vault_->read("secret/data/oms/fix", "password")',
                'env_or_throw("MD_API_SECRET")',
            ]
        )

    def t28_ps_ref(self) -> str:
        return self.pick(
            [
                "$env:OLB_SVC_PASSWORD",
                "(Get-Secret -Name SvcMqPassword -AsPlainText)",
                "$Credential.GetNetworkCredential().Password",
                "(Get-AzKeyVaultSecret -VaultName kv-olb-prod -Name svc-core -AsPlainText)",
                "Read-Host -AsSecureString 'Heslo'",
            ]
        )

    def t28_ci_ref(self) -> str:
        return self.pick(
            [
                "$(ANDROID_KEYSTORE_PASSWORD)",
                "${env.ARTIFACTORY_TOKEN}",
                "credentials('olb-sonar-token')",
                "$(System.AccessToken)",
                "${{ variables.pixClientSecret }}",
                "$SONAR_TOKEN",
                "${DB2_PASSWORD}",
            ]
        )

    def t28_airflow_ref(self) -> str:
        return self.pick(
            [
                "{{ conn.db2_core.password }}",
                "{{ var.value.pix_client_secret }}",
                'BaseHook.get_connection("oracle_dwh").password',
                'Variable.get("sendgrid_api_key")',
                '"{{ var.json.spei.key_passphrase }}"',
            ]
        )

    def t28_sas_ref(self) -> str:
        return self.pick(
            [
                '"&dwh_pw."',
                '"%sysget(DWH_PASSWORD)"',
                "&db2pass",
                '"%superq(ora_pwd)"',
            ]
        )

    def t28_r_ref(self) -> str:
        return self.pick(
            [
                'Sys.getenv("DWH_PWD")',
                'keyring::key_get("dwh", "sas_dwh")',
                'config::get("password")',
                'rstudioapi::askForPassword("Heslo do DWH")',
            ]
        )

    def t28_jcl_ref(self) -> str:
        return self.pick(["&FTPPWD", "&&PWDSYM", "%%OLB_FTP_PWD", "&SYSPW", "%%PASSWORD"])

    def t28_ctm_ref(self) -> str:
        return self.pick(
            [
                "%%OLB_SFTP_PASS_FROM_VAULT",
                "%%\\CTM_SECRET_SFTP_PT",
                "%%ORA_PASS_VAULT",
                "%%$OLB_PT_SECRET",
            ]
        )

    def t28_kv_ref(self) -> str:
        return self.pick(
            [
                "@Microsoft.KeyVault(SecretUri=https://kv-olb-prod.vault.azure.net/secrets/pix-client-secret/)",
                "@Microsoft.KeyVault(VaultName=kv-olb-pay;SecretName=spei-key-passphrase)",
                "vault:secret/data/brokerage/marketdata#polygon",
                "akv://kv-olb-core/db2-batch-password",
                "op://OLB-Payments/EBICS A006/password",
            ]
        )

    def t28_spring_ref(self) -> str:
        return self.pick(
            [
                "${DB2_PASSWORD}",
                "${ORACLE_LEDGER_PASSWORD:}",
                "${vault.pix.client-secret}",
                "${sm://projects/olb/secrets/mq-password}",
                "#{environment['MQ_APP_PASSWORD']}",
            ]
        )

    def t28_shell_ref(self) -> str:
        return self.pick(
            [
                "${FIX_PASSWORD}",
                "$(cat /run/secrets/md_api_key)",
                "${MQ_PASSWORD:?not set}",
                "$(az keyvault secret show --vault-name kv-olb-prod -n sftp-banxico --query value -o tsv)",
                "$(vault kv get -field=password secret/core/db2)",
            ]
        )

    def t28_tf_ref(self) -> str:
        return self.pick(
            [
                "var.pix_client_secret",
                "random_password.sql_admin.result",
                "data.azurerm_key_vault_secret.db2.value",
                "azurerm_storage_account.dwh.primary_access_key",
                'module.kv.secrets["spei-passphrase"]',
            ]
        )

    def t28_kafka_ref(self) -> str:
        return self.pick(
            [
                "${file:/opt/kafka/secrets/db2.properties:password}",
                "${env:CONNECT_DB2_PASSWORD}",
                "${vault:secret/kafka/connect:db2_password}",
                "${directory:/mnt/secrets:db2-password}",
            ]
        )

    # ------------------------------------------------------------------ negatives: text
    def t28_placeholder(self) -> str:
        return self.pick(
            [
                "********",
                "<heslo>",
                "<senha>",
                "<contraseña>",
                "VLOZTE_HESLO",
                "SUA_SENHA_AQUI",
                "TU_CLAVE_AQUI",
                "CHANGE_ME",
                "[REDACTED]",
                "[ODSTRANĚNO]",
                "xxxxxxxx",
                "<doplnit z trezoru>",
                "(ver cofre CyberArk)",
                "***oculto***",
            ]
        )

    def t28_i18n(self) -> str:
        return self.pick(
            [
                "Zadejte heslo",
                "Heslo je příliš krátké",
                "Zapomněli jste heslo?",
                "Nesprávný PIN, zbývají 2 pokusy",
                "Digite sua senha",
                "Senha incorreta. Tente novamente.",
                "Esqueceu sua senha?",
                "A senha deve ter pelo menos 8 caracteres",
                "Introduce tu contraseña",
                "La contraseña no es válida",
                "¿Olvidaste tu contraseña?",
                "Tu NIP debe tener 4 dígitos",
                "Token de segurança expirado",
            ]
        )

    def t28_key_name(self) -> str:
        return self.pick(
            [
                "pix-client-secret",
                "spei-key-passphrase",
                "android-keystore-password",
                "db2-batch-password",
                "mq-app-password",
                "fix-b3-password",
                "md-polygon-api-key",
            ]
        )

    def t28_policy(self) -> str:
        return self.pick(["12", "14", "90", "24", "5", "30", "8"])

    def t28_example_pw(self) -> str:
        if self.rng.randrange(2):
            return self.pick(
                ["Exemplo@2024", "Ejemplo123!", "Priklad2024", "DemoPass#1", "s3nh4-demo"]
            )
        return self.t28_url_pw()

    def t28_fake(self) -> str:
        return self.pick(
            [
                "fake-pix-client-secret",
                "test_only_not_a_real_password",
                "dummy-api-key-0000",
                "FAKE-" + self.s(12, UPNUM),
                "nepravé-heslo-pro-testy",
                "senha-falsa-de-teste",
                "clave_de_prueba_no_real",
                "unit-test-secret-do-not-use",
                "not-a-real-token-" + self.s(6, LOWNUM),
            ]
        )

    def t28_doc_webhook(self) -> str:
        return self.pick(
            [
                "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
                "https://hooks.slack.com/services/TXXXXXXXX/BXXXXXXXX/XXXXXXXXXXXXXXXXXXXXXXXX",
            ]
        )

    def t28_doc_jwt(self) -> str:
        return self.pick(
            [
                "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
                "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiYWRtaW4iOnRydWUsImlhdCI6MTUxNjIzOTAyMn0.KMUFsIDTnFmyG3nMiGM6H9FNFUROf3wh7SmqJp-QV30",
            ]
        )

    def t28_doc_aws(self) -> str:
        return self.pick(
            [
                "aws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "aws_access_key_id = AKIAI44QH8DHBEXAMPLE\naws_secret_access_key = je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY",
            ]
        )


VALUES = Tune28Values


def _t(path: str, text: str, kind: str, positive: bool) -> evalset.Template:
    """A template; a leading newline (after the opening quotes) is dropped."""
    return (path, text[1:] if text.startswith("\n") else text, kind, positive)


TEMPLATES: list[evalset.Template] = [
    # ================================================================== core banking batch
    _t(
        "core-batch/jcl/OLBEOD40.jcl",
        r"""
//OLBEOD40 JOB (OLB,EOD),'PRENOS VYPISU CZ',CLASS=B,MSGCLASS=X,
//             NOTIFY=&SYSUID,REGION=0M
//*--------------------------------------------------------------------
//* ODESLANI DENNICH VYPISU NA SFTP GW (CZ) - SPOUSTI CONTROL-M
//* ZMENA 2023-11-02 JNOVAK: PREVOD Z ODBC NA FTP
//*--------------------------------------------------------------------
//STEP010  EXEC PGM=IEFBR14
//DEL1     DD DSN=OLB.EOD.VYPISY.FTPLOG,DISP=(MOD,DELETE),
//            SPACE=(TRK,0)
//STEP020  EXEC PGM=FTP,PARM='(EXIT TIMEOUT 120'
//SYSPRINT DD SYSOUT=*
//OUTPUT   DD DSN=OLB.EOD.VYPISY.FTPLOG,DISP=(NEW,CATLG),
//            SPACE=(TRK,(5,5)),DCB=(RECFM=FB,LRECL=133)
//INPUT    DD *
sftpgw01.core.olb.local
OLBFTP01 {V}
BINARY
PUT 'OLB.EOD.VYPISY.D&LYYMMDD' /inbound/vypisy/vypis_&LYYMMDD..dat
QUIT
/*
""",
        "t28_racf_pw",
        True,
    ),
    _t(
        "core-batch/proclib/FTPPUT.prc",
        r"""
//FTPPUT   PROC DSN=,HOST=sftpgw01.core.olb.local,USR=OLBFTP01
//*--------------------------------------------------------------------
//* GENERIC FTP PUT. THE PASSWORD IS NEVER CODED HERE: CONTROL-M
//* RESOLVES IT FROM THE VAULT AT SUBMIT TIME (SEE OLB-SEC-0042).
//*--------------------------------------------------------------------
//FTP      EXEC PGM=FTP,PARM='(EXIT'
//SYSPRINT DD SYSOUT=*
//INPUT    DD *,SYMBOLS=JCLONLY
&HOST
&USR {V}
PUT '&DSN' /inbound/
QUIT
/*
//         PEND
""",
        "t28_jcl_ref",
        False,
    ),
    _t(
        "core-batch/cobol/OLBINT01.cbl",
        r"""
       IDENTIFICATION DIVISION.
       PROGRAM-ID. OLBINT01.
      *----------------------------------------------------------------*
      * VYPOCET UROKU - MESICNI UZAVERKA (DB2 DSNPRD1)                 *
      * PUVODNI AUTOR: P.KRAL 1998, UPRAVY: M.SOUSA 2021 (PT MIGRACE)  *
      *----------------------------------------------------------------*
       ENVIRONMENT DIVISION.
       DATA DIVISION.
       WORKING-STORAGE SECTION.
       01  WS-DB2-LOCATION     PIC X(8)  VALUE 'DSNPRD1 '.
       01  WS-DB2-USER         PIC X(8)  VALUE 'OLBDB2BT'.
       01  WS-DB2-PASS         PIC X(8)  VALUE '{V}'.
       01  WS-RC               PIC S9(4) COMP VALUE ZERO.
           EXEC SQL INCLUDE SQLCA END-EXEC.
           EXEC SQL INCLUDE OLBACCT END-EXEC.
       PROCEDURE DIVISION.
       0000-MAIN.
           EXEC SQL
               CONNECT TO :WS-DB2-LOCATION
               USER :WS-DB2-USER USING :WS-DB2-PASS
           END-EXEC
           IF SQLCODE NOT = 0
              DISPLAY 'OLBINT01 CONNECT FAILED SQLCODE=' SQLCODE
              MOVE 16 TO RETURN-CODE
              GOBACK
           END-IF
           PERFORM 1000-VYPOCET-UROKU
           GOBACK.
""",
        "t28_racf_pw",
        True,
    ),
    _t(
        "core-batch/copybooks/OLBPINBK.cpy",
        r"""
      *----------------------------------------------------------------*
      * OLBPINBK - PIN CHANGE REQUEST TO PAYSHIELD (CMD 'CA'/'JC')      *
      * PIN BLOCKS ARE ISO-0, ENCRYPTED UNDER THE ZPK - NEVER CLEAR.   *
      * THE VALUES BELOW ARE THE TEST VECTORS FROM THE 2019 UAT RUN.   *
      *----------------------------------------------------------------*
       01  OLB-PIN-CHANGE-REQ.
           05  PCR-HEADER           PIC X(4)   VALUE 'OLB1'.
           05  PCR-CMD              PIC X(2)   VALUE 'CA'.
           05  PCR-TPK-UNDER-LMK    PIC X(33).
           05  PCR-OLD-PIN-BLOCK    PIC X(16)  VALUE '{V}'.
           05  PCR-NEW-PIN-BLOCK    PIC X(16)  VALUE '{V2}'.
           05  PCR-PIN-BLOCK-FMT    PIC X(2)   VALUE '01'.
           05  PCR-PAN-12           PIC X(12).
""",
        "t28_pinblock",
        False,
    ),
    _t(
        "core-bridge/src/main/resources/db2.properties",
        r"""
# DB2 for z/OS connection used by the Java bridge (core-bridge) - PROD
# owner: tym Core Integrace (Ostrava)
db2.url=jdbc:db2://db2prd01.core.olb.local:50000/DSNPRD1:sslConnection=true;currentSchema=OLBCORE;
db2.user=olbbrg01
db2.password={V}
db2.pool.maxSize=24
db2.pool.minIdle=4
db2.sslTrustStoreLocation=/opt/olb/bridge/tls/db2-truststore.jks
db2.sslTrustStorePassword={V2}
db2.fetchSize=500
""",
        "t28_pw",
        True,
    ),
    _t(
        "core-bridge/src/main/resources/application-prod.yml",
        r"""
spring:
  datasource:
    db2:
      url: jdbc:db2://db2prd01.core.olb.local:50000/DSNPRD1:sslConnection=true;
      username: olbbrg01
      password: {V}
    ledger:
      url: jdbc:oracle:thin:@//orapt-scan.lis.olb.local:1521/LEDGERPRD
      username: LEDGER_APP
      password: {V2}
  jms:
    ibm-mq:
      queue-manager: OLBQM01
      channel: OLB.BRIDGE.SVRCONN
      conn-name: mqprd01.core.olb.local(1414)
      user: mqbridge
      password: {V3}
management:
  endpoints.web.exposure.include: health,info,prometheus
""",
        "t28_spring_ref",
        False,
    ),
    _t(
        "core-bridge/src/main/java/cz/olbanca/bridge/ledger/OracleLedgerDao.java",
        r"""
package cz.olbanca.bridge.ledger;

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.SQLException;

/**
 * Posting of end-of-day balances into the Lisbon ledger (Oracle RAC).
 * TODO(msousa): move credentials to the wallet, ticket OLB-4471.
 */
public class OracleLedgerDao implements AutoCloseable {

    private static final String URL = "jdbc:oracle:thin:@//orapt-scan.lis.olb.local:1521/LEDGERPRD";
    private static final String USER = "LEDGER_APP";
    private static final String PASS = "{V}";

    private final Connection connection;

    public OracleLedgerDao() throws SQLException {
        this.connection = DriverManager.getConnection(URL, USER, PASS);
        this.connection.setAutoCommit(false);
    }

    public void postBalance(String iban, long minorUnits, String currency) throws SQLException {
        try (PreparedStatement ps = connection.prepareStatement(
                "INSERT INTO GL_EOD_BALANCE (IBAN, AMOUNT_MINOR, CCY, POSTED_AT) VALUES (?, ?, ?, SYSTIMESTAMP)")) {
            ps.setString(1, iban);
            ps.setLong(2, minorUnits);
            ps.setString(3, currency);
            ps.executeUpdate();
        }
    }

    @Override
    public void close() throws SQLException {
        connection.close();
    }
}
""",
        "t28_oracle_pw",
        True,
    ),
    _t(
        "core-bridge/src/main/java/cz/olbanca/bridge/config/Db2Config.java",
        r"""
package cz.olbanca.bridge.config;

import com.ibm.db2.jcc.DB2SimpleDataSource;
import java.util.Properties;

public final class Db2Config {

    private Db2Config() {}

    public static DB2SimpleDataSource dataSource(Properties props) {
        DB2SimpleDataSource ds = new DB2SimpleDataSource();
        ds.setServerName(props.getProperty("db2.host", "db2prd01.core.olb.local"));
        ds.setPortNumber(Integer.parseInt(props.getProperty("db2.port", "50000")));
        ds.setDatabaseName("DSNPRD1");
        ds.setDriverType(4);
        ds.setUser(props.getProperty("db2.user"));
        // heslo nikdy v kodu - injektuje ho OpenShift z Key Vaultu
        ds.setPassword({V});
        ds.setSslConnection(true);
        ds.setSslTrustStorePassword({V2});
        return ds;
    }
}
""",
        "t28_java_ref",
        False,
    ),
    _t(
        "core-batch/oracle/wallet/create_wallet.sh",
        r"""
#!/bin/bash
# Vytvori Oracle wallet pro batch ucty (ledger, dwh) na serveru lisbatch01.
# Spoustet jako oracle. Puvodne z OLB-3310.
set -euo pipefail

WALLET=/u01/app/oracle/wallet/olbbatch
mkdir -p "$WALLET"

orapki wallet create -wallet "$WALLET" -pwd '{V}' -auto_login_local
mkstore -wrl "$WALLET" -createCredential LEDGERPRD LEDGER_BATCH '{V2}' <<< '{V}'
mkstore -wrl "$WALLET" -createCredential DWHPRD DWH_ETL '{V3}' <<< '{V}'

chmod 600 "$WALLET"/*
echo "wallet ready: $WALLET"
""",
        "t28_oracle_pw",
        True,
    ),
    _t(
        "core-batch/oracle/migrate/V2024_07__recreate_users.sql",
        r"""
-- Export z LEDGERPRD (dbms_metadata.get_ddl) pred upgradem na 19.22.
-- Hashe hesel jsou verifikatory 12c, nikoliv hesla. Nezverejnovat mimo DBA tym.
CREATE USER "LEDGER_APP" IDENTIFIED BY VALUES '{V}'
  DEFAULT TABLESPACE "LEDGER_DATA" TEMPORARY TABLESPACE "TEMP"
  PROFILE "OLB_APP_PROFILE";

CREATE USER "LEDGER_RO" IDENTIFIED BY VALUES '{V2}'
  DEFAULT TABLESPACE "USERS" TEMPORARY TABLESPACE "TEMP"
  PROFILE "OLB_RO_PROFILE";

GRANT CREATE SESSION TO "LEDGER_RO";
""",
        "t28_oracle_verifier",
        False,
    ),
    _t(
        "core-batch/oracle/admin/reset_service_accounts.sql",
        r"""
-- ===========================================================================
-- Reset hesel servisnich uctu po rotaci (ticket OLB-5120, schvalil CISO 2024-05-14)
-- Spustit jako SYSDBA na LEDGERPRD (Lisboa) a DWHPRD.
-- ===========================================================================
ALTER USER LEDGER_APP IDENTIFIED BY "{V}" ACCOUNT UNLOCK;
ALTER USER LEDGER_BATCH IDENTIFIED BY "{V2}";
ALTER USER DWH_ETL IDENTIFIED BY "{V3}" PASSWORD EXPIRE;

-- kontrola
SELECT username, account_status, expiry_date FROM dba_users
 WHERE username IN ('LEDGER_APP', 'LEDGER_BATCH', 'DWH_ETL');
""",
        "t28_oracle_pw",
        True,
    ),
    _t(
        "core-bridge/config/db2cli.ini",
        r"""
; db2cli.ini for the reporting bridge on olbrep02 (Windows)
; managed by hand - see wiki "DB2 pristupy"
[COMMON]
Trace=0
TraceFileName=C:\ProgramData\IBM\DB2\trace\cli.trc

[DSNPRD1]
Database=DSNPRD1
Protocol=TCPIP
Hostname=db2prd01.core.olb.local
Port=50000
Security=SSL
SSLServerCertificate=C:\olb\tls\db2prd01.arm
UID=OLBREP01
PWD={V}

[DSNUAT1]
Database=DSNUAT1
Hostname=db2uat01.core.olb.local
Port=50001
UID=OLBREPU1
PWD={V2}
""",
        "t28_racf_pw",
        True,
    ),
    _t(
        "core-batch/controlm/OLB_EOD_CZ.xml",
        r"""
<?xml version="1.0" encoding="utf-8"?>
<!-- Control-M export, folder OLB_EOD_CZ, exported by ctmdefine 2024-06-03 -->
<DEFTABLE xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:noNamespaceSchemaLocation="Folder.xsd">
  <FOLDER DATACENTER="CTM-OSTRAVA" VERSION="920" PLATFORM="UNIX" FOLDER_NAME="OLB_EOD_CZ">
    <JOB JOBNAME="OLBEOD40" APPLICATION="CORE" SUB_APPLICATION="EOD" TASKTYPE="Job"
         MEMNAME="OLBEOD40" MEMLIB="OLB.PROD.JCLLIB" RUN_AS="OLBBATCH" CRITICAL="1">
      <VARIABLE NAME="%%FTP_HOST" VALUE="sftpgw01.core.olb.local"/>
      <VARIABLE NAME="%%FTP_USER" VALUE="OLBFTP01"/>
      <VARIABLE NAME="%%FTP_PWD" VALUE="{V}"/>
      <VARIABLE NAME="%%FTP_PWD_UAT" VALUE="{V2}"/>
      <INCOND NAME="OLBEOD30-ENDED-OK" ODATE="ODAT" AND_OR="A"/>
      <OUTCOND NAME="OLBEOD40-ENDED-OK" ODATE="ODAT" SIGN="+"/>
    </JOB>
  </FOLDER>
</DEFTABLE>
""",
        "t28_racf_pw",
        True,
    ),
    _t(
        "core-batch/controlm/OLB_EOD_PT.xml",
        r"""
<?xml version="1.0" encoding="utf-8"?>
<!-- Control-M export, pasta OLB_EOD_PT. As senhas vêm do Control-M Vault (ctmvault). -->
<DEFTABLE xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:noNamespaceSchemaLocation="Folder.xsd">
  <FOLDER DATACENTER="CTM-LISBOA" VERSION="920" PLATFORM="UNIX" FOLDER_NAME="OLB_EOD_PT">
    <JOB JOBNAME="OLBPTEXT" APPLICATION="CORE" SUB_APPLICATION="EOD-PT" TASKTYPE="Command"
         CMDLINE="/opt/olb/bin/extrato_sepa.sh" RUN_AS="olbbatch">
      <VARIABLE NAME="%%SFTP_USER" VALUE="olb_sepa_pt"/>
      <VARIABLE NAME="%%SFTP_PASS" VALUE="{V}"/>
      <VARIABLE NAME="%%ORA_PASS" VALUE="{V2}"/>
    </JOB>
  </FOLDER>
</DEFTABLE>
""",
        "t28_ctm_ref",
        False,
    ),
    _t(
        "core-bridge/pom-settings/settings.xml",
        r"""
<?xml version="1.0" encoding="UTF-8"?>
<!-- ~/.m2/settings.xml on the build agents (olb-build01..04). Copied here for reference. -->
<settings xmlns="http://maven.apache.org/SETTINGS/1.2.0">
  <servers>
    <server>
      <id>olb-artifactory-releases</id>
      <username>svc-maven-deploy</username>
      <password>{V}</password>
    </server>
    <server>
      <id>ibm-mq-allclient</id>
      <username>olb-ci</username>
      <password>{V2}</password>
    </server>
  </servers>
  <mirrors>
    <mirror>
      <id>olb-artifactory-releases</id>
      <mirrorOf>*</mirrorOf>
      <url>https://olbanca.jfrog.io/artifactory/maven-virtual</url>
    </mirror>
  </mirrors>
</settings>
""",
        "t28_pw",
        True,
    ),
    _t(
        "core-bridge/pom-settings/settings-encrypted.xml",
        r"""
<?xml version="1.0" encoding="UTF-8"?>
<!-- Version with passwords encrypted by `mvn -ep` (master password in settings-security.xml). -->
<settings xmlns="http://maven.apache.org/SETTINGS/1.2.0">
  <servers>
    <server>
      <id>olb-artifactory-releases</id>
      <username>svc-maven-deploy</username>
      <password>{V}</password>
    </server>
    <server>
      <id>ibm-mq-allclient</id>
      <username>olb-ci</username>
      <password>{V2}</password>
    </server>
  </servers>
</settings>
""",
        "t28_mvn_enc",
        False,
    ),
    _t(
        "core-bridge/src/main/java/cz/olbanca/bridge/mq/MqConnectionFactoryBuilder.java",
        r"""
package cz.olbanca.bridge.mq;

import com.ibm.msg.client.jms.JmsConnectionFactory;
import com.ibm.msg.client.jms.JmsFactoryFactory;
import com.ibm.msg.client.wmq.WMQConstants;
import javax.jms.JMSException;

public final class MqConnectionFactoryBuilder {

    public static JmsConnectionFactory build() throws JMSException {
        JmsFactoryFactory ff = JmsFactoryFactory.getInstance(WMQConstants.WMQ_PROVIDER);
        JmsConnectionFactory cf = ff.createConnectionFactory();
        cf.setStringProperty(WMQConstants.WMQ_HOST_NAME, "mqprd01.core.olb.local");
        cf.setIntProperty(WMQConstants.WMQ_PORT, 1414);
        cf.setStringProperty(WMQConstants.WMQ_CHANNEL, "OLB.BRIDGE.SVRCONN");
        cf.setIntProperty(WMQConstants.WMQ_CONNECTION_MODE, WMQConstants.WMQ_CM_CLIENT);
        cf.setStringProperty(WMQConstants.WMQ_QUEUE_MANAGER, "OLBQM01");
        cf.setBooleanProperty(WMQConstants.USER_AUTHENTICATION_MQCSP, true);
        cf.setStringProperty(WMQConstants.USERID, "mqbridge");
        cf.setStringProperty(WMQConstants.PASSWORD, "{V}");
        return cf;
    }

    private MqConnectionFactoryBuilder() {}
}
""",
        "t28_pw",
        True,
    ),
    # ================================================================== mobile banking app
    _t(
        "mobile/android/app/build.gradle.kts",
        r"""
plugins {
    id("com.android.application")
    id("org.jetbrains.kotlin.android")
    id("com.google.gms.google-services")
}

android {
    namespace = "cz.olbanca.mobile"
    compileSdk = 34

    defaultConfig {
        applicationId = "cz.olbanca.mobile"
        minSdk = 26
        targetSdk = 34
        versionCode = 41207
        versionName = "4.12.7"
    }

    signingConfigs {
        create("release") {
            storeFile = file("../keystore/olb-release.jks")
            storePassword = "{V}"
            keyAlias = "olb-mobile"
            keyPassword = "{V2}"
        }
    }

    buildTypes {
        release {
            isMinifyEnabled = true
            signingConfig = signingConfigs.getByName("release")
            proguardFiles(getDefaultProguardFile("proguard-android-optimize.txt"), "proguard-rules.pro")
        }
    }
}
""",
        "t28_pw",
        True,
    ),
    _t(
        "mobile/android/app/build.gradle.ci.kts",
        r"""
// Varianta pro Azure DevOps: hesla ke keystoru jdou z pipeline promennych.
android {
    signingConfigs {
        create("release") {
            storeFile = file(System.getenv("OLB_KEYSTORE_PATH") ?: "../keystore/olb-release.jks")
            storePassword = {V}
            keyAlias = "olb-mobile"
            keyPassword = {V2}
        }
    }
}
""",
        "t28_kotlin_ref",
        False,
    ),
    _t(
        "mobile/android/gradle.properties",
        r"""
org.gradle.jvmargs=-Xmx4g -Dfile.encoding=UTF-8
android.useAndroidX=true
kotlin.code.style=official
# release signing (jen na build agentu olb-mac-02, NEPUSHOVAT)
OLB_STORE_PASSWORD={V}
OLB_KEY_PASSWORD={V2}
# artifactory pro interni SDK (olb-ui-kit)
olbArtifactoryUser=svc-mobile-ci
olbArtifactoryPassword={V3}
""",
        "t28_pw",
        True,
    ),
    _t(
        "mobile/android/local.properties",
        r"""
## This file must *NOT* be checked into Version Control Systems,
# as it contains information specific to your local configuration.
sdk.dir=/Users/tdvorak/Library/Android/sdk
MAPS_API_KEY={V}
""",
        "t28_google_key",
        True,
    ),
    _t(
        "mobile/android/app/src/main/java/cz/olbanca/mobile/push/PushSender.kt",
        r"""
package cz.olbanca.mobile.push

import okhttp3.MediaType.Companion.toMediaType
import okhttp3.OkHttpClient
import okhttp3.Request
import okhttp3.RequestBody.Companion.toRequestBody

// Debug helper pro testovani notifikaci z aplikace (jen interni build "dogfood").
object PushSender {
    private const val FCM_SERVER_KEY = "{V}"
    private val client = OkHttpClient()

    fun sendTest(deviceToken: String, title: String) {
        val body = "{\"to\":\"$deviceToken\",\"notification\":{\"title\":\"$title\"}}"
        val request = Request.Builder()
            .url("https://fcm.googleapis.com/fcm/send")
            .header("Authorization", "key=$FCM_SERVER_KEY")
            .post(body.toRequestBody("application/json".toMediaType()))
            .build()
        client.newCall(request).execute().close()
    }
}
""",
        "t28_firebase_server",
        True,
    ),
    _t(
        "mobile/android/app/src/main/java/cz/olbanca/mobile/net/ApiConfig.kt",
        r"""
package cz.olbanca.mobile.net

import cz.olbanca.mobile.BuildConfig

object ApiConfig {
    const val BASE_URL_CZ = "https://api.olbanca.cz/mobile/v3/"
    const val BASE_URL_PT = "https://api.olbanca.pt/mobile/v3/"
    const val BASE_URL_BR = "https://api.olbanca.com.br/mobile/v3/"

    // Klice se vkladaji pri buildu (buildConfigField z CI), nejsou v repozitari.
    val pixApiKey: String get() = {V}
    val cardProcessorClientKey: String get() = {V2}
}
""",
        "t28_kotlin_ref",
        False,
    ),
    _t(
        "mobile/android/app/src/main/res/values-cs/strings.xml",
        r"""
<?xml version="1.0" encoding="utf-8"?>
<resources>
    <string name="app_name">OLB Banka</string>
    <string name="login_title">Přihlášení</string>
    <string name="login_password_hint">{V}</string>
    <string name="login_error_password">{V2}</string>
    <string name="login_forgot">{V3}</string>
    <string name="pin_setup_title">Nastavte si PIN</string>
    <string name="biometric_prompt">Přihlaste se otiskem prstu</string>
</resources>
""",
        "t28_i18n",
        False,
    ),
    _t(
        "mobile/android/app/src/test/java/cz/olbanca/mobile/login/LoginViewModelTest.kt",
        r"""
package cz.olbanca.mobile.login

import kotlinx.coroutines.test.runTest
import org.junit.Assert.assertEquals
import org.junit.Test

class LoginViewModelTest {

    private val api = FakeAuthApi(acceptedPassword = "{V}")

    @Test
    fun `wrong password shows error`() = runTest {
        val vm = LoginViewModel(api)
        vm.login("jan.novak", "{V2}")
        assertEquals(LoginState.WrongPassword, vm.state.value)
    }
}
""",
        "t28_fake",
        False,
    ),
    _t(
        "mobile/android/app/google-services.json",
        r"""
{
  "project_info": {
    "project_number": "482913305517",
    "project_id": "olb-mobile-prod",
    "storage_bucket": "olb-mobile-prod.appspot.com"
  },
  "client": [
    {
      "client_info": {
        "mobilesdk_app_id": "{V}",
        "android_client_info": {
          "package_name": "cz.olbanca.mobile"
        }
      },
      "oauth_client": [
        {
          "client_id": "482913305517-8k2q1vq0m6t7h3c9r5n4p0s2d1f6g7j8.apps.googleusercontent.com",
          "client_type": 3
        }
      ]
    }
  ],
  "configuration_version": "1"
}
""",
        "t28_firebase_app_id",
        False,
    ),
    _t(
        "mobile/backend/push-relay/firebase-adminsdk-olb.json",
        r"""
{
  "type": "service_account",
  "project_id": "olb-mobile-prod",
  "private_key_id": "3f1c9b2a7d604e55a1b08c6e2f9d4a71c0b3e8d2",
  "private_key": "{V}",
  "client_email": "firebase-adminsdk-k2p7q@olb-mobile-prod.iam.gserviceaccount.com",
  "client_id": "104772930118845120371",
  "auth_uri": "https://accounts.google.com/o/oauth2/auth",
  "token_uri": "https://oauth2.googleapis.com/token",
  "universe_domain": "googleapis.com"
}
""",
        "t28_pk_json",
        True,
    ),
    _t(
        "mobile/ios/OLBanca/Config/Secrets.swift",
        r"""
//
//  Secrets.swift
//  OLBanca
//
//  Temporary until the BFF proxies the processor calls (MOB-2291).
//

import Foundation

enum Secrets {
    static let cardProcessorApiKey = "{V}"
    static let cardProcessorApiKeyHomolog = "{V2}"
}
""",
        "t28_card_key",
        True,
    ),
    _t(
        "mobile/ios/OLBanca/Config/AppConfig.swift",
        r"""
import Foundation

struct AppConfig {
    static let apiBaseURL = URL(string: "https://api.olbanca.pt/mobile/v3/")!

    /// Read from Info.plist (filled by xcconfig from the CI variable group), never hard-coded.
    static var apiKey: String {
        {V}
    }

    static var refreshToken: String? {
        {V2}
    }
}
""",
        "t28_swift_ref",
        False,
    ),
    _t(
        "mobile/ios/fastlane/Fastfile",
        r"""
default_platform(:ios)

platform :ios do
  before_all do
    ENV["MATCH_PASSWORD"] = "{V}"
    ENV["FASTLANE_XCODEBUILD_SETTINGS_TIMEOUT"] = "120"
  end

  desc "Build and upload to TestFlight"
  lane :beta do
    match(type: "appstore", git_url: "git@ssh.dev.azure.com:v3/olbanca/mobile/certificates", readonly: true)
    increment_build_number(xcodeproj: "OLBanca.xcodeproj")
    build_app(scheme: "OLBanca-Release", export_method: "app-store")
    upload_to_testflight(skip_waiting_for_build_processing: true)
  end
end
""",
        "t28_pw",
        True,
    ),
    _t(
        "mobile/ios/fastlane/AuthKey_7QX2M9K4LD.p8",
        r"""
{V}
""",
        "t28_p8_key",
        True,
    ),
    _t(
        "mobile/ios/fastlane/.env.default",
        r"""
# Copy to .env and fill in locally. Do not commit real values.
FASTLANE_USER=mobile-release@olbanca.cz
FASTLANE_PASSWORD={V}
MATCH_PASSWORD={V2}
APP_STORE_CONNECT_API_KEY_ID=7QX2M9K4LD
APP_STORE_CONNECT_API_ISSUER_ID=69a6de7f-1a2b-47e3-e053-5b8c7c11a4d1
""",
        "t28_placeholder",
        False,
    ),
    _t(
        "mobile/react-native/.env.production",
        r"""
API_BASE_URL=https://api.olbanca.com.mx/mobile/v3
MAPBOX_PUBLIC_TOKEN=pk.eyJ1Ijoib2xiYW5jYSIsImEiOiJjbHg5ZDJ2c3YwMXQ0MnFxN3BkZ2Z1eW5uIn0.q3Zp1n5dTz3v7b2Qm9kRwA
MAPBOX_DOWNLOADS_TOKEN={V}
SENTRY_ENVIRONMENT=production
""",
        "t28_mapbox_sk",
        True,
    ),
    _t(
        "mobile/react-native/src/config/index.ts",
        r"""
import Config from 'react-native-config';

export const apiConfig = {
  baseUrl: Config.API_BASE_URL ?? 'https://api.olbanca.com.mx/mobile/v3',
  apiKey: {V},
  timeoutMs: 15000,
};

export async function loadSession() {
  const refreshToken = {V2};
  return refreshToken;
}
""",
        "t28_rn_ref",
        False,
    ),
    _t(
        "mobile/react-native/src/i18n/es-MX.json",
        r"""
{
  "login": {
    "title": "Iniciar sesión",
    "passwordPlaceholder": "{V}",
    "passwordError": "{V2}",
    "forgot": "{V3}"
  },
  "spei": {
    "confirm": "Confirmar transferencia SPEI"
  }
}
""",
        "t28_i18n",
        False,
    ),
    _t(
        "mobile/react-native/src/__tests__/speiTransfer.test.ts",
        r"""
import { createClient } from '../api/client';
import { sendSpei } from '../features/spei/sendSpei';

jest.mock('../api/client');

describe('sendSpei', () => {
  const client = createClient({ baseUrl: 'http://localhost:4010', apiKey: '{V}' });

  it('rejects a CLABE with a bad check digit', async () => {
    await expect(sendSpei(client, { clabe: '002180700000000001', amount: 100 })).rejects.toThrow(
      'CLABE inválida',
    );
  });

  it('sends the session token', async () => {
    await sendSpei(client, { clabe: '002180700000000009', amount: 100, token: '{V2}' });
    expect(client.post).toHaveBeenCalled();
  });
});
""",
        "t28_fake",
        False,
    ),
    _t(
        "mobile/react-native/.npmrc",
        r"""
registry=https://olbanca.jfrog.io/artifactory/api/npm/npm-virtual/
//olbanca.jfrog.io/artifactory/api/npm/npm-virtual/:_auth={V}
//olbanca.jfrog.io/artifactory/api/npm/npm-virtual/:always-auth=true
//olbanca.jfrog.io/artifactory/api/npm/npm-virtual/:email=mobile-ci@olbanca.cz
""",
        "t28_basic",
        True,
    ),
    _t(
        "mobile/react-native/package-lock.json",
        r"""
{
  "name": "olb-banca",
  "version": "4.12.7",
  "lockfileVersion": 3,
  "requires": true,
  "packages": {
    "node_modules/@rnmapbox/maps": {
      "version": "10.1.19",
      "resolved": "https://olbanca.jfrog.io/artifactory/api/npm/npm-virtual/@rnmapbox/maps/-/maps-10.1.19.tgz",
      "integrity": "{V}"
    },
    "node_modules/react-native-config": {
      "version": "1.5.1",
      "resolved": "https://olbanca.jfrog.io/artifactory/api/npm/npm-virtual/react-native-config/-/react-native-config-1.5.1.tgz",
      "integrity": "{V2}"
    },
    "node_modules/react-native-keychain": {
      "version": "8.2.0",
      "resolved": "https://olbanca.jfrog.io/artifactory/api/npm/npm-virtual/react-native-keychain/-/react-native-keychain-8.2.0.tgz",
      "integrity": "{V3}"
    }
  }
}
""",
        "t28_sri",
        False,
    ),
    _t(
        "mobile/ios/OLBanca/Info.plist",
        r"""
<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>CFBundleDisplayName</key>
	<string>OLB Banca</string>
	<key>GIDClientID</key>
	<string>{V}</string>
	<key>CFBundleURLTypes</key>
	<array>
		<dict>
			<key>CFBundleURLSchemes</key>
			<array>
				<string>com.googleusercontent.apps.olb</string>
			</array>
		</dict>
	</array>
	<key>OLBApiKey</key>
	<string>$(OLB_API_KEY)</string>
</dict>
</plist>
""",
        "t28_google_client_id",
        False,
    ),
    # ================================================================== brokerage
    _t(
        "brokerage/fix/quickfix/sessions/B3_ORDER_ENTRY.cfg",
        r"""
# QuickFIX/J session settings - B3 (BVMF) order entry, production
# Owner: Corretora OLB - mesa de ações (São Paulo)
[DEFAULT]
ConnectionType=initiator
ReconnectInterval=5
FileStorePath=/var/lib/olb/fix/store
FileLogPath=/var/log/olb/fix
StartTime=09:30:00
EndTime=18:30:00
TimeZone=America/Sao_Paulo
UseDataDictionary=Y
DataDictionary=/opt/olb/fix/FIX44-B3.xml
SocketUseSSL=Y
SocketKeyStore=/opt/olb/fix/tls/olbbrk-b3.p12
SocketKeyStorePassword={V}

[SESSION]
BeginString=FIX.4.4
SenderCompID=OLBBRK01
TargetCompID=BVMFOE
SocketConnectHost=fix-oe.b3.com.br
SocketConnectPort=34560
HeartBtInt=30
# custom: OlbLogonCallback reads these into tags 553/554
Username=OLBBRK01
Password={V2}
""",
        "t28_fix_pw",
        True,
    ),
    _t(
        "brokerage/fix/quickfix/sessions/EURONEXT_LISBON.cfg",
        r"""
# QuickFIX session - Euronext Lisbon (OEG), UAT + PROD
# Passwords are injected by the launcher (fix-launcher.sh) from Vault, see README.
[DEFAULT]
ConnectionType=initiator
FileStorePath=/var/lib/olb/fix/store-eln
StartTime=07:00:00
EndTime=17:45:00
TimeZone=Europe/Lisbon

[SESSION]
BeginString=FIXT.1.1
DefaultApplVerID=FIX.5.0SP2
SenderCompID=OLBPT01
TargetCompID=EURONEXT
SocketConnectHost=oeg.euronext.internal.olb.local
SocketConnectPort=9101
HeartBtInt=30
Username=OLBPT01
Password={V}
""",
        "t28_shell_ref",
        False,
    ),
    _t(
        "brokerage/fix/logs/FIX.4.4-OLBBRK01-BVMFOE.messages.log",
        r"""
20240611-09:29:58.412 : 8=FIX.4.4|9=118|35=A|34=1|49=OLBBRK01|52=20240611-12:29:58.411|56=BVMFOE|98=0|108=30|141=Y|553=OLBBRK01|554={V}|10=187|
20240611-09:29:58.733 : 8=FIX.4.4|9=72|35=A|34=1|49=BVMFOE|52=20240611-12:29:58.731|56=OLBBRK01|98=0|108=30|141=Y|10=044|
20240611-09:30:28.735 : 8=FIX.4.4|9=57|35=0|34=2|49=OLBBRK01|52=20240611-12:30:28.734|56=BVMFOE|10=211|
20240611-09:30:31.102 : 8=FIX.4.4|9=161|35=D|34=3|49=OLBBRK01|52=20240611-12:30:31.101|56=BVMFOE|11=OLB24061100000412|1=BR0012345|21=1|38=500|40=2|44=36.41|54=1|55=PETR4|59=0|60=20240611-12:30:31.101|10=092|
""",
        "t28_fix_pw",
        True,
    ),
    _t(
        "brokerage/fix/logs/FIX.4.4-OLBBRK01-BVMFOE.event.log",
        r"""
20240612-12:30:01.004 : Initiated logon request
20240612-12:30:01.311 : Received logon
20240612-12:31:14.882 : ExecutionReport 39=2 11={V} 37=8812736651 ls=500@36.44
20240612-12:31:15.019 : ExecutionReport 39=1 11={V2} 37=8812736702 ls=200@112.90
20240612-12:31:15.407 : OrderCancelReject 11={V3} 102=1 58=Too late to cancel
20240612-18:30:00.000 : Initiated logout request
""",
        "t28_clordid",
        False,
    ),
    _t(
        "brokerage/oms/src/fix/logon_handler.cpp",
        r"""
// OLB OMS - FIX logon handling (QuickFIX C++)
#include "logon_handler.hpp"

#include <quickfix/Session.h>
#include <quickfix/fix44/Logon.h>

namespace olb::oms {

namespace {
// TODO(rcastro): read from the session settings once B3 certifies the new build.
constexpr const char* kB3Username = "OLBBRK01";
constexpr const char* kB3Password = "{V}";
constexpr const char* kB3PasswordDr = "{V2}";
}  // namespace

void LogonHandler::toAdmin(FIX::Message& message, const FIX::SessionID& sessionId) {
  if (message.getHeader().getField(FIX::FIELD::MsgType) != FIX::MsgType_Logon) {
    return;
  }
  const bool dr = sessionId.getTargetCompID().getString() == "BVMFDR";
  message.setField(FIX::Username(kB3Username));
  message.setField(FIX::Password(dr ? kB3PasswordDr : kB3Password));
  message.setField(FIX::ResetSeqNumFlag(true));
}

}  // namespace olb::oms
""",
        "t28_fix_pw",
        True,
    ),
    _t(
        "brokerage/oms/src/fix/session_factory.cpp",
        r"""
#include "session_factory.hpp"

#include <cstdlib>
#include <stdexcept>
#include <string>

namespace olb::oms {

SessionCredentials SessionFactory::credentials(const std::string& venue) const {
  SessionCredentials creds;
  creds.username = venue == "B3" ? "OLBBRK01" : "OLBPT01";
  // never log these; loaded at start-up only
  const std::string password = {V};
  const std::string mdSecret = {V2};
  creds.password = password;
  creds.mdSecret = mdSecret;
  return creds;
}

}  // namespace olb::oms
""",
        "t28_cpp_ref",
        False,
    ),
    _t(
        "brokerage/pricing/include/olb/md/vendor_credentials.hpp",
        r"""
#pragma once

// Market data vendor credentials for the pricing engine (legacy build only).
// The containerised build uses env vars instead; see docs/marketdata.md.
namespace olb::md {

struct VendorCredentials {
  const char* name;
  const char* endpoint;
  const char* apiKey;
};

inline constexpr VendorCredentials kVendors[] = {
    {"polygon", "wss://socket.polygon.io/stocks", "{V}"},
    {"twelvedata", "wss://ws.twelvedata.com/v1/quotes/price", "{V2}"},
    {"alphavantage", "https://www.alphavantage.co/query", "{V3}"},
};

}  // namespace olb::md
""",
        "t28_mdata_key",
        True,
    ),
    _t(
        "brokerage/marketdata/config/vendors.yaml",
        r"""
# Market data vendors - brokerage (owner: equipa Market Data, Lisboa)
vendors:
  refinitiv:
    enabled: true
    endpoint: https://api.refinitiv.com
    app_key: "{V}"
    username: GE-A-01234567-3-8812
  polygon:
    enabled: true
    ws: wss://socket.polygon.io/stocks
    api_key: "{V2}"
  finnhub:
    enabled: false
    token: "{V3}"
cache:
  redis_url: redis://md-cache.brk.olb.local:6379/2
""",
        "t28_mdata_key",
        True,
    ),
    _t(
        "brokerage/marketdata/config/vendors.prod.yaml",
        r"""
# Produção: as chaves vêm do Key Vault via CSI driver; não colocar valores aqui.
vendors:
  refinitiv:
    enabled: true
    endpoint: https://api.refinitiv.com
    app_key_ref: "{V}"
  polygon:
    enabled: true
    api_key_ref: "{V2}"
""",
        "t28_kv_ref",
        False,
    ),
    _t(
        "brokerage/marketdata/feeds/refinitiv_client.py",
        r"""
# Thin wrapper over the Refinitiv Data Platform session used by the pricing jobs.

from __future__ import annotations

import os

import refinitiv.data as rd

from olb.settings import settings


def open_session() -> rd.session.Session:
    app_key = {V}
    password = {V2}
    session = rd.session.platform.Definition(
        app_key=app_key,
        grant=rd.session.platform.GrantPassword(username="GE-A-01234567-3-8812", password=password),
    ).get_session()
    session.open()
    return session
""",
        "t28_py_ref",
        False,
    ),
    _t(
        "brokerage/research/notebooks/backtest_b3_momentum.ipynb",
        r"""
{
 "cells": [
  {
   "cell_type": "markdown",
   "metadata": {},
   "source": ["# Backtest momentum B3 (IBOV) - rascunho da Ana"]
  },
  {
   "cell_type": "code",
   "execution_count": 3,
   "metadata": {},
   "outputs": [],
   "source": [
    "import pandas as pd\n",
    "from polygon import RESTClient\n",
    "\n",
    "client = RESTClient(api_key=\"{V}\")\n",
    "aggs = client.get_aggs(\"PETR4\", 1, \"day\", \"2023-01-01\", \"2024-06-01\")\n"
   ]
  }
 ],
 "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
        "t28_mdata_key",
        True,
    ),
    _t(
        "brokerage/risk/risk_engine/settings/prod.py",
        r"""
from .base import *  # noqa: F403

DEBUG = False
ALLOWED_HOSTS = ["risk.brk.olb.local", "risk-api.olbanca.pt"]
SECRET_KEY = "{V}"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "risk",
        "USER": "risk_app",
        "HOST": "pg-risk.brk.olb.local",
        "PORT": 5432,
    }
}
""",
        "t28_django_key",
        True,
    ),
    _t(
        "brokerage/risk/risk_engine/settings/test.py",
        r"""
from .base import *  # noqa: F403

SECRET_KEY = "{V}"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
MD_API_KEY = "{V2}"
""",
        "t28_fake",
        False,
    ),
    _t(
        "brokerage/oms/docker-compose.yml",
        r"""
services:
  oms-db:
    image: postgres:16
    environment:
      POSTGRES_DB: oms
      POSTGRES_USER: oms
      POSTGRES_PASSWORD: "{V}"
    volumes:
      - oms-pg:/var/lib/postgresql/data
  oms-redis:
    image: redis:7-alpine
    command: ["redis-server", "--requirepass", "{V2}"]
  oms:
    build: .
    depends_on: [oms-db, oms-redis]
    environment:
      OMS_DATABASE_URL: postgresql://oms:{V}@oms-db:5432/oms
      OMS_REDIS_URL: redis://:{V2}@oms-redis:6379/0
volumes:
  oms-pg: {}
""",
        "t28_url_pw",
        True,
    ),
    _t(
        "brokerage/oms/tests/test_logon.py",
        r"""
import pytest

from olb.oms.fix.logon import build_logon


@pytest.fixture
def creds():
    # Fake credentials: the acceptor in tests/fakes/acceptor.py accepts anything.
    return {"username": "TESTCOMP", "password": "{V}"}


def test_logon_sets_554(creds):
    msg = build_logon(creds)
    assert msg.get(554) == "{V}"


def test_logon_without_password_fails():
    with pytest.raises(ValueError):
        build_logon({"username": "TESTCOMP", "password": ""})


def test_logon_dr_password():
    msg = build_logon({"username": "TESTCOMP", "password": "{V2}"}, target="BVMFDR")
    assert msg.get(553) == "TESTCOMP"
""",
        "t28_fake",
        False,
    ),
    _t(
        "brokerage/docs/FIX_onboarding.md",
        r"""
# Onboarding de uma nova contraparte FIX

1. Pedir à contraparte o `SenderCompID`/`TargetCompID` e o IP de origem.
2. Criar a sessão no ambiente de certificação. Exemplo de ficheiro (valores de demonstração):

```ini
[SESSION]
BeginString=FIX.4.4
SenderCompID=DEMOBRK
TargetCompID=DEMOEXCH
SocketConnectHost=fix-cert.example.com
SocketConnectPort=9878
Username=DEMOBRK
Password={V}
```

3. Para testar manualmente: `fixclient --url fix://DEMOBRK:{V2}@fix-cert.example.com:9878`.
4. Depois de certificado, abrir pedido no ServiceNow para a equipa de Segurança criar o segredo.
""",
        "t28_example_pw",
        False,
    ),
    _t(
        "brokerage/oms/Dockerfile",
        r"""
FROM python:3.12-slim AS base
WORKDIR /app
COPY requirements.lock .
RUN pip install --no-cache-dir --require-hashes -r requirements.lock
COPY src/ ./src/
ENV PYTHONPATH=/app/src \
    OMS_ENV=prod \
    MD_VENDOR=polygon \
    MD_API_KEY={V}
USER 10001
CMD ["python", "-m", "olb.oms"]
""",
        "t28_mdata_key",
        True,
    ),
    _t(
        "brokerage/oms/Dockerfile.secure",
        r"""
# syntax=docker/dockerfile:1.6
FROM python:3.12-slim
WORKDIR /app
COPY requirements.lock .
RUN --mount=type=secret,id=artifactory_token \
    PIP_INDEX_URL="https://svc-brk-ci:$(cat /run/secrets/artifactory_token)@olbanca.jfrog.io/artifactory/api/pypi/pypi-virtual/simple" \
    pip install --no-cache-dir --require-hashes -r requirements.lock
COPY src/ ./src/
# injected at runtime by the orchestrator
ENV MD_API_KEY=""
CMD ["sh", "-c", "MD_API_KEY={V} exec python -m olb.oms"]
""",
        "t28_shell_ref",
        False,
    ),
    _t(
        "brokerage/oms/src/olb/oms/auth/session_signer.py",
        r"""
# Signs the short-lived session tokens handed to the web brokerage front-end.

import hmac
import time
from hashlib import sha256

import jwt

# rotated 2024-02; previous key kept for 24h grace
_SIGNING_KEY = "{V}"
_SIGNING_KEY_PREVIOUS = "{V2}"


def issue(customer_id: str, ttl: int = 900) -> str:
    now = int(time.time())
    return jwt.encode({"sub": customer_id, "iat": now, "exp": now + ttl}, _SIGNING_KEY, algorithm="HS256")


def verify_webhook(body: bytes, signature: str) -> bool:
    expected = hmac.new(_SIGNING_KEY.encode(), body, sha256).hexdigest()
    return hmac.compare_digest(expected, signature)
""",
        "t28_hex_secret",
        True,
    ),
    _t(
        "brokerage/oms/http/oms-prod.http",
        r"""
### OMS prod - smoke after deploy (JetBrains HTTP client)
GET https://oms.brk.olb.local/api/v2/health
Accept: application/json

### list open orders for the desk
GET https://oms.brk.olb.local/api/v2/orders?status=open&desk=EQ-BR
Authorization: Bearer {V}
Accept: application/json
""",
        "t28_jwt",
        True,
    ),
    _t(
        "brokerage/reference/isin_universe.csv",
        r"""
isin,source,added_by,added_at,tradable
{V},ANNA-DSB,mferreira,2024-05-02,Y
{V2},ANNA-DSB,rcastro,2024-05-02,Y
{V3},manual,jdvorak,2024-05-17,N
""",
        "t28_isin",
        False,
    ),
    _t(
        "brokerage/oms/config/redis.conf",
        r"""
# redis for OMS session cache (brk-redis01)
bind 10.42.8.21 127.0.0.1
port 6379
protected-mode yes
requirepass {V}
maxmemory 4gb
maxmemory-policy allkeys-lru
appendonly yes
""",
        "t28_pw",
        True,
    ),
    # ================================================================== payment rails
    _t(
        "payments/swift/alliance/lau/lau_keys_saa.txt",
        r"""
SWIFT Alliance Access - LAU keys (Alliance Access <-> OLB Payment Hub, MQ adapter)
Instance: SAA-PRD-LIS (olb-saa01.pay.olb.local)
Key pair rotated 2024-04-30 by: M. Ferreira (left half) / T. Horak (right half)

Message partner OLB_PAYHUB_MQ
  LAU key, left part : {V}
  LAU key, right part: {V2}

Message partner OLB_PAYHUB_FILE (old, deactivated in July)
  LAU key, left part : {V3}
  LAU key, right part: {V4}
""",
        "t28_swift_lau",
        True,
    ),
    _t(
        "payments/swift/samples/pacs008_outbound_sample.xml",
        r"""
<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08">
  <FIToFICstmrCdtTrf>
    <GrpHdr>
      <MsgId>OLB20240611PT000412</MsgId>
      <CreDtTm>2024-06-11T10:14:22+01:00</CreDtTm>
      <NbOfTxs>1</NbOfTxs>
      <SttlmInf><SttlmMtd>INDA</SttlmMtd></SttlmInf>
    </GrpHdr>
    <CdtTrfTxInf>
      <PmtId>
        <InstrId>OLBPT0000412</InstrId>
        <EndToEndId>NOTPROVIDED</EndToEndId>
        <UETR>{V}</UETR>
      </PmtId>
      <IntrBkSttlmAmt Ccy="EUR">12500.00</IntrBkSttlmAmt>
      <ChrgBr>SHAR</ChrgBr>
    </CdtTrfTxInf>
    <CdtTrfTxInf>
      <PmtId>
        <InstrId>OLBPT0000413</InstrId>
        <EndToEndId>INV-2024-0611</EndToEndId>
        <UETR>{V2}</UETR>
      </PmtId>
      <IntrBkSttlmAmt Ccy="EUR">830.17</IntrBkSttlmAmt>
      <ChrgBr>SHAR</ChrgBr>
    </CdtTrfTxInf>
  </FIToFICstmrCdtTrf>
</Document>
""",
        "t28_uetr",
        False,
    ),
    _t(
        "payments/swift/mt-parser/src/test/resources/mt103_cz.txt",
        r"""
{1:F01OLBACZPPAXXX0000000000}{2:I103KOMBCZPPXXXXN}{4:
:20:OLBCZ240611001
:23B:CRED
:32A:240611CZK125000,00
:50K:/{V}
NOVAK JAN
OSTRAVA
:59:/{V2}
SOUSA MARIA
LISBOA
:71A:SHA
-}
""",
        "t28_iban",
        False,
    ),
    _t(
        "payments/sepa/ebics/config/ebics-client.properties",
        r"""
# EBICS client (SEPA SCT/SDD to the CSM) - OLB Portugal
ebics.url=https://ebics.csm.olb.local/ebicsweb/ebicsweb
ebics.hostId=OLBPTEBX
ebics.partnerId=OLBPT001
ebics.userId=SEPAGW01
ebics.keystore.path=/opt/olb/sepa/ebics/SEPAGW01.p12
ebics.keystore.password={V}
ebics.signature.version=A006
ebics.authentication.version=X002
ebics.encryption.version=E002
""",
        "t28_pw",
        True,
    ),
    _t(
        "payments/sepa/ebics/keys/SEPAGW01_A006.pem",
        r"""
{V}
""",
        "t28_rsa_pem",
        True,
    ),
    _t(
        "payments/sepa/ebics/keys/bank_X002_public.pem",
        r"""
{V}
""",
        "t28_pubkey",
        False,
    ),
    _t(
        "payments/sepa/ebics/certs/csm_tls_chain.pem",
        r"""
# CSM TLS chain, fetched 2024-03-02 (openssl s_client -showcerts)
{V}
{V2}
""",
        "t28_cert",
        False,
    ),
    _t(
        "payments/pix/config/psp-pix.yaml",
        r"""
# Integração PIX - API do PSP (BACEN SPI/DICT via provedor)
pix:
  ispb: "31872495"
  environments:
    producao:
      base-url: https://pix.psp-provedor.com.br/api/v2
      client-id: olb-pix-prd-01
      client-secret: "{V}"
      certificate: /opt/olb/pix/certs/olb-pix-prd.pfx
    homologacao:
      base-url: https://pix-h.psp-provedor.com.br/api/v2
      client-id: olb-pix-hml-01
      client-secret: "{V2}"
      certificate: /opt/olb/pix/certs/olb-pix-hml.pfx
""",
        "t28_client_secret",
        True,
    ),
    _t(
        "payments/pix/config/psp-pix-cert.properties",
        r"""
# senha dos certificados mTLS (.pfx) do PIX
pix.cert.prd.path=/opt/olb/pix/certs/olb-pix-prd.pfx
pix.cert.prd.password={V}
pix.cert.hml.path=/opt/olb/pix/certs/olb-pix-hml.pfx
pix.cert.hml.password={V2}
""",
        "t28_pw",
        True,
    ),
    _t(
        "payments/pix/src/main/kotlin/br/com/olbanca/pix/dict/DictClient.kt",
        r"""
package br.com.olbanca.pix.dict

import io.ktor.client.HttpClient
import io.ktor.client.request.forms.submitForm
import io.ktor.http.parameters

class DictClient(private val http: HttpClient) {

    private val clientId = System.getenv("PIX_CLIENT_ID") ?: "olb-pix-prd-01"
    private val clientSecret = {V}
    private val certPassword = {V2}

    suspend fun token(): String {
        val response = http.submitForm(
            url = "https://pix.psp-provedor.com.br/oauth/token",
            formParameters = parameters {
                append("grant_type", "client_credentials")
                append("client_id", clientId)
                append("client_secret", clientSecret)
            },
        )
        return response.body<TokenResponse>().accessToken
    }
}
""",
        "t28_kotlin_ref",
        False,
    ),
    _t(
        "payments/pix/src/test/resources/pix-conciliacao-amostra.csv",
        r"""
end_to_end_id,valor,chave_destino,status
{V},150.00,+5511987654321,LIQUIDADO
{V2},2300.45,cliente@olbanca.com.br,LIQUIDADO
{V3},12.90,7d9f0c1e-5a2b-4c3d-8e1f-0a9b8c7d6e5f,DEVOLVIDO
""",
        "t28_pix_e2e",
        False,
    ),
    _t(
        "payments/pix/README.pt-BR.md",
        r"""
# Gateway PIX

Serviço que fala com o provedor PSP (SPI + DICT).

## Rodando localmente

Use o mock do provedor (`docker compose up pix-mock`) e as credenciais de exemplo:

```bash
export PIX_BASE_URL=https://pix-sandbox.example.com/api/v2
export PIX_CLIENT_ID=exemplo-client
export PIX_CLIENT_SECRET={V}
curl -u exemplo-client:{V2} https://pix-sandbox.example.com/oauth/token -d grant_type=client_credentials
```

As credenciais reais ficam no cofre (`kv-olb-pay`), nunca no repositório.
""",
        "t28_example_pw",
        False,
    ),
    _t(
        "payments/spei/stp/config.py",
        r"""
# Configuración del conector SPEI (STP) - OLB México
STP_EMPRESA = "OLBANCA"
STP_BASE_URL = "https://prod.stpmex.com/speiws/rest"
STP_PRIVATE_KEY_PATH = "/opt/olb/spei/keys/olbanca-prod.pem"
STP_PRIVATE_KEY_PASSPHRASE = "{V}"

# sandbox (demo.stpmex.com)
STP_DEMO_PRIVATE_KEY_PATH = "/opt/olb/spei/keys/prueba-key.pem"
STP_DEMO_PRIVATE_KEY_PASSPHRASE = "{V2}"
""",
        "t28_pw",
        True,
    ),
    _t(
        "payments/spei/stp/keys/olbanca-prod.pem",
        r"""
{V}
""",
        "t28_enc_pem",
        False,
    ),
    _t(
        "payments/spei/stp/tests/fixtures/ordenes_pago.json",
        r"""
[
  {"claveRastreo": "OLB240611000001", "cuentaBeneficiario": "{V}", "monto": "1500.00", "concepto": "Renta junio"},
  {"claveRastreo": "OLB240611000002", "cuentaBeneficiario": "{V2}", "monto": "89.90", "concepto": "Pago servicio"},
  {"claveRastreo": "OLB240611000003", "cuentaOrdenante": "{V3}", "monto": "25000.00", "concepto": "Nomina"}
]
""",
        "t28_clabe",
        False,
    ),
    _t(
        "payments/hsm/ceremony/2024-03-ZMK-exchange-Banxico.txt",
        r"""
KEY CEREMONY - ZMK exchange with correspondent (SPEI participant link)
Date: 2024-03-19, room B2.14 Ciudad de México
Custodians: A. Ramírez (C1), L. Ortega (C2), J. Dvořák (C3, remote witness)

Component 1 (clear): {V}
Component 1 KCV    : 7A3C19
Component 2 (clear): {V2}
Component 2 KCV    : E10B44
Component 3 (clear): {V3}
Component 3 KCV    : 5F9D02

Combined ZMK KCV: 0C62AE  -> matches correspondent's letter ref BXC-2024-0311
NOTE: envelopes to be destroyed after FK command on payShield 10K (both units).
""",
        "t28_hsm_component",
        True,
    ),
    _t(
        "payments/hsm/inventory/key_inventory_payshield.csv",
        r"""
key_name,key_type,scheme,under_lmk,kcv,owner,expires
ZPK_SPEI_BANXICO,ZPK,U,{V},4B21C7,payments-mx,2025-03-19
TPK_ATM_CZ_POOL1,TPK,U,{V2},91E0AF,cards-cz,2025-09-30
CVK_VISA_OLBPT,CVK,T,{V3},0D3F58,cards-pt,2026-01-31
""",
        "t28_lmk_key",
        False,
    ),
    _t(
        "payments/hsm/luna/hsm-client.conf",
        r"""
# Luna Network HSM 7 - partition used by the SEPA/PIX signing service
hsm.slot.label=OLB_PAY_SIGN
hsm.library=/usr/safenet/lunaclient/lib/libCryptoki2_64.so
hsm.partition.crypto-officer.password={V}
hsm.partition.crypto-user.password={V2}
hsm.ha.group=OLB_PAY_HA
hsm.ha.members=luna-lis-01.pay.olb.local,luna-ost-01.pay.olb.local
""",
        "t28_pw",
        True,
    ),
    _t(
        "payments/cards/processor/adyen.env",
        r"""
# Adyen (cartões PT) - merchant account OLBancaPT_ECOM
ADYEN_ENVIRONMENT=LIVE
ADYEN_MERCHANT_ACCOUNT=OLBancaPT_ECOM
ADYEN_LIVE_URL_PREFIX=1797a841fbb37ca7-OLBanca
ADYEN_API_KEY={V}
""",
        "t28_adyen_key",
        True,
    ),
    _t(
        "payments/cards/processor/processors.yaml",
        r"""
# Card processors per country (Mercado Pago collectors)
processors:
  mx:
    name: mercadopago
    collector_id: 1698431207
    access_token: "{V}"
  br:
    name: mercadopago
    collector_id: 1544870923
    access_token: "{V2}"
  br_marketplace:
    name: mercadopago
    access_token: "{V3}"
""",
        "t28_mp_token",
        True,
    ),
    _t(
        "payments/cards/webhooks/notification-hmac.properties",
        r"""
# HMAC keys for the processor's standard notifications (one per merchant account)
webhook.hmac.OLBancaPT_ECOM={V}
webhook.hmac.OLBancaPT_POS={V2}
webhook.basic.username=olb-webhooks
""",
        "t28_hmac_hex",
        True,
    ),
    _t(
        "payments/cards/web/checkout-config.ts",
        r"""
// Client-side config for the card drop-in. Client keys are public by design.
export const checkoutConfig = {
  environment: 'live',
  clientKey: '{V}',
  locale: 'pt-PT',
  fallbackClientKey: '{V2}',
};
""",
        "t28_pub_client_key",
        False,
    ),
    _t(
        "payments/cards/tests/test_luhn_and_bins.py",
        r"""
import pytest

from olb.cards.pan import is_valid_pan, mask

# Documented processor test cards - not real accounts.
TEST_CARDS = [
    "{V}",
    "{V2}",
    "{V3}",
]


@pytest.mark.parametrize("pan", TEST_CARDS)
def test_documented_test_cards_pass_luhn(pan):
    assert is_valid_pan(pan)
    assert mask(pan).count("*") == len(pan) - 10
""",
        "t28_test_pan",
        False,
    ),
    _t(
        "payments/cards/reports/settlement_2024-06-10.csv",
        r"""
merchant_ref,pan_masked,amount,currency,auth_code,status
OLB-PT-0001829,{V},42.50,EUR,081233,SETTLED
OLB-PT-0001830,{V2},1200.00,EUR,771902,SETTLED
OLB-PT-0001831,{V3},9.99,EUR,000000,REFUSED
""",
        "t28_masked_pan",
        False,
    ),
    _t(
        "payments/gateway/src/main/resources/application.yml",
        r"""
server:
  port: 8443
jasypt:
  encryptor:
    algorithm: PBEWITHHMACSHA512ANDAES_256
    password: ${JASYPT_ENCRYPTOR_PASSWORD}
payments:
  sepa:
    ebics-keystore-password: {V}
  spei:
    key-passphrase: {V2}
  swift:
    mq-password: {V3}
""",
        "t28_enc_value",
        False,
    ),
    _t(
        "payments/gateway/nginx/conf.d/sepa-inst.conf",
        r"""
upstream sepa_inst_csm {
    server csm-inst.pay.olb.local:9443;
    keepalive 32;
}

server {
    listen 443 ssl;
    server_name sepa-inst.pay.olb.local;
    ssl_certificate     /etc/nginx/tls/sepa-inst.crt;
    ssl_certificate_key /etc/nginx/tls/sepa-inst.key;

    location /api/inst/ {
        proxy_pass https://sepa_inst_csm;
        proxy_set_header Authorization "Basic {V}";
        proxy_set_header X-OLB-Channel "payhub";
    }
}
""",
        "t28_basic",
        True,
    ),
    _t(
        "payments/iso20022/samples/pain001_sct_example.xml",
        r"""
<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.09">
  <CstmrCdtTrfInitn>
    <PmtInf>
      <PmtInfId>OLB-PAIN-20240611-01</PmtInfId>
      <DbtrAgt><FinInstnId><BICFI>{V}</BICFI></FinInstnId></DbtrAgt>
      <CdtTrfTxInf>
        <CdtrAgt><FinInstnId><BICFI>{V2}</BICFI></FinInstnId></CdtrAgt>
      </CdtTrfTxInf>
      <CdtTrfTxInf>
        <CdtrAgt><FinInstnId><BICFI>{V3}</BICFI></FinInstnId></CdtrAgt>
      </CdtTrfTxInf>
    </PmtInf>
  </CstmrCdtTrfInitn>
</Document>
""",
        "t28_bic",
        False,
    ),
    _t(
        "payments/swift/alliance/lite2/autoclient.properties",
        r"""
# Alliance Lite2 AutoClient - backup channel for MX Banxico correspondent traffic
autoclient.home=/opt/swift/autoclient
autoclient.user=olbmx-autoclient
autoclient.password={V}
autoclient.keystore=/opt/swift/autoclient/conf/olbmx.p12
autoclient.keystore.password={V2}
autoclient.emission.dir=/data/swift/out
autoclient.reception.dir=/data/swift/in
""",
        "t28_pw",
        True,
    ),
    # ================================================================== IBM MQ and Kafka
    _t(
        "integration/mq/scripts/mq-bridge.env",
        r"""
# IBM MQ client settings for the payment hub bridge (loaded by systemd EnvironmentFile)
MQ_QMGR=OLBQM01
MQ_CHANNEL=OLB.PAYHUB.SVRCONN
MQ_CONNNAME=mqprd01.core.olb.local(1414),mqprd02.core.olb.local(1414)
MQ_APP_USER=payhub
MQ_APP_PASSWORD={V}
MQSSLKEYR=/var/mqm/ssl/payhub
""",
        "t28_pw",
        True,
    ),
    _t(
        "integration/mq/python/mq_consumer.py",
        r"""
import pymqi

QMGR = "OLBQM01"
CHANNEL = "OLB.SAS.SVRCONN"
CONN_INFO = "mqprd01.core.olb.local(1414)"
USER = "sasmq"
PASSWORD = "{V}"

qmgr = pymqi.connect(QMGR, CHANNEL, CONN_INFO, USER, PASSWORD)
queue = pymqi.Queue(qmgr, "OLB.DWH.EVENTS")
try:
    while True:
        print(queue.get())
finally:
    queue.close()
    qmgr.disconnect()
""",
        "t28_pw",
        True,
    ),
    _t(
        "integration/kafka/clients/client-ssl.properties",
        r"""
# Kafka client (mTLS) for the core events cluster - olb-kafka-prd
bootstrap.servers=kafka01.evt.olb.local:9093,kafka02.evt.olb.local:9093,kafka03.evt.olb.local:9093
security.protocol=SSL
ssl.truststore.location=/etc/olb/kafka/truststore.jks
ssl.truststore.password={V}
ssl.keystore.location=/etc/olb/kafka/core-bridge.keystore.jks
ssl.keystore.password={V2}
ssl.key.password={V3}
""",
        "t28_pw",
        True,
    ),
    _t(
        "integration/kafka/clients/confluent-cloud-brk.properties",
        r"""
# Confluent Cloud - brokerage market data fan-out (lkc-7q2m9x, eu-west-1)
bootstrap.servers=pkc-7prvp.eu-west-1.aws.confluent.cloud:9092
security.protocol=SASL_SSL
sasl.mechanism=PLAIN
sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="QX4ZB7NHK2R6WTPM" password="{V}";
schema.registry.url=https://psrc-4kk0p.eu-west-1.aws.confluent.cloud
basic.auth.credentials.source=USER_INFO
basic.auth.user.info=7DJ2KQ6VHX3NLM5P:{V2}
""",
        "t28_confluent_secret",
        True,
    ),
    _t(
        "integration/kafka/connect/jdbc-sink-db2-ledger.json",
        r"""
{
  "name": "jdbc-sink-db2-ledger",
  "config": {
    "connector.class": "io.confluent.connect.jdbc.JdbcSinkConnector",
    "topics": "core.ledger.postings.v2",
    "connection.url": "jdbc:db2://db2prd01.core.olb.local:50000/DSNPRD1:sslConnection=true;",
    "connection.user": "OLBKCON1",
    "connection.password": "{V}",
    "insert.mode": "upsert",
    "pk.mode": "record_key",
    "tasks.max": "3"
  }
}
""",
        "t28_kafka_ref",
        False,
    ),
    _t(
        "integration/kafka/connect/jdbc-source-oracle-dwh.json",
        r"""
{
  "name": "jdbc-source-oracle-dwh",
  "config": {
    "connector.class": "io.confluent.connect.jdbc.JdbcSourceConnector",
    "connection.url": "jdbc:oracle:thin:@//orapt-scan.lis.olb.local:1521/DWHPRD",
    "connection.user": "DWH_KAFKA",
    "connection.password": "{V}",
    "mode": "timestamp+incrementing",
    "timestamp.column.name": "UPDATED_AT",
    "incrementing.column.name": "ID",
    "topic.prefix": "dwh.",
    "table.whitelist": "DWH.CUSTOMER_SEGMENTS"
  }
}
""",
        "t28_oracle_pw",
        True,
    ),
    # ================================================================== Windows domain
    _t(
        "infra/windows/scripts/Join-OLBDomain.ps1",
        r"""
<#
.SYNOPSIS
    Pripoji novou pobockovou stanici do domeny OLB.LOCAL (pouziva tym Desktop, Ostrava).
#>
param(
    [Parameter(Mandatory)] [string] $ComputerName,
    [string] $OU = "OU=Pobocky,OU=Stanice,DC=olb,DC=local"
)

$user = "OLB\svc_domainjoin"
$pw = ConvertTo-SecureString '{V}' -AsPlainText -Force
$cred = New-Object System.Management.Automation.PSCredential($user, $pw)

Add-Computer -ComputerName $ComputerName -DomainName "olb.local" -OUPath $OU -Credential $cred -Restart -Force
Write-Host "Stanice $ComputerName pripojena do $OU"
""",
        "t28_pw",
        True,
    ),
    _t(
        "infra/windows/scripts/Set-ServiceAccounts.ps1",
        r"""
# Sets the logon account of the OLB services on the reporting servers.
param([string[]] $Servers = @("olbrep01", "olbrep02"))

$password = {V}
$secure = ConvertTo-SecureString $password -AsPlainText -Force

foreach ($server in $Servers) {
    Invoke-Command -ComputerName $server -ScriptBlock {
        param($pw)
        $svc = Get-CimInstance Win32_Service -Filter "Name='OLBReportAgent'"
        $svc | Invoke-CimMethod -MethodName Change -Arguments @{ StartName = 'OLB\svc_report'; StartPassword = $pw }
    } -ArgumentList {V2}
}
""",
        "t28_ps_ref",
        False,
    ),
    _t(
        "infra/windows/scripts/backup_sql.bat",
        r"""
@echo off
REM Nocni zaloha reportingove DB (SQLREP01) - spousti Task Scheduler jako SYSTEM
set SQLSRV=SQLREP01\OLBREP
set BKDIR=\\nas-ost01.olb.local\zalohy\sql
sqlcmd -S %SQLSRV% -U sa -P {V} -Q "BACKUP DATABASE [OLBReporting] TO DISK='%BKDIR%\OLBReporting_%date:~-4%%date:~3,2%%date:~0,2%.bak' WITH COMPRESSION"
if errorlevel 1 echo Zaloha selhala >> C:\olb\logs\backup.log
""",
        "t28_weak_pw",
        True,
    ),
    _t(
        "infra/windows/scripts/map_drives.cmd",
        r"""
@echo off
rem Mapovani sitovych disku pro oddeleni Finance (Lisboa) - GPO logon script
net use F: /delete /y >nul 2>&1
net use F: \\fs01.lis.olb.local\financas /user:OLB\svc_map_fin {V} /persistent:no
net use R: \\fs01.lis.olb.local\relatorios /persistent:no
""",
        "t28_pw",
        True,
    ),
    _t(
        "infra/windows/gpo/{31B2F340-016D-11D2-945F-00C04FB984F9}/Machine/Preferences/Groups/Groups.xml",
        r"""
<?xml version="1.0" encoding="utf-8"?>
<Groups clsid="{3125E937-EB16-4b4c-9934-544FC6D24D26}">
  <User clsid="{DF5F1855-51E5-4d24-8B1A-D9BDE98BA1D1}" name="olbadmin_local" image="2" changed="2019-08-14 09:12:51" uid="{8F2C1B7D-3E4A-4C5B-9D6E-7F8A9B0C1D2E}">
    <Properties action="U" newName="" fullName="OLB local admin" description="pobocky CZ" cpassword="{V}" changeLogon="0" noChange="1" neverExpires="1" acctDisabled="0" userName="olbadmin_local"/>
  </User>
</Groups>
""",
        "t28_cpassword",
        True,
    ),
    _t(
        "infra/windows/gpo/reports/DefaultDomainPolicy.xml",
        r"""
<?xml version="1.0" encoding="utf-16"?>
<GPO xmlns="http://www.microsoft.com/GroupPolicy/Settings">
  <Identifier>
    <Identifier xmlns="http://www.microsoft.com/GroupPolicy/Types">{V}</Identifier>
    <Domain xmlns="http://www.microsoft.com/GroupPolicy/Types">olb.local</Domain>
  </Identifier>
  <LinkedGPO>
    <Identifier xmlns="http://www.microsoft.com/GroupPolicy/Types">{V2}</Identifier>
    <Domain xmlns="http://www.microsoft.com/GroupPolicy/Types">olb.local</Domain>
  </LinkedGPO>
  <Name>Default Domain Policy</Name>
  <Computer>
    <ExtensionData>
      <Extension xmlns:q1="http://www.microsoft.com/GroupPolicy/Settings/Security">
        <q1:Account><q1:Name>MinimumPasswordLength</q1:Name><q1:SettingNumber>14</q1:SettingNumber><q1:Type>Password</q1:Type></q1:Account>
        <q1:Account><q1:Name>PasswordHistorySize</q1:Name><q1:SettingNumber>24</q1:SettingNumber><q1:Type>Password</q1:Type></q1:Account>
        <q1:Account><q1:Name>ClearTextPassword</q1:Name><q1:SettingBoolean>false</q1:SettingBoolean><q1:Type>Password</q1:Type></q1:Account>
      </Extension>
    </ExtensionData>
  </Computer>
  <LinksTo><SOMPath>olb.local</SOMPath><Enabled>true</Enabled></LinksTo>
  <FilterDataAvailable>true</FilterDataAvailable>
  <SecurityDescriptor><Owner><SID>S-1-5-21-1844237615-2291780427-3127414203-512</SID></Owner></SecurityDescriptor>
</GPO>
""",
        "t28_gpo_guid",
        False,
    ),
    _t(
        "infra/windows/scripts/Grant-ShareAccess.ps1",
        r"""
# ACL pro sdileni \\fs01.ost.olb.local\audit - SIDy skupin z domeny OLB (export z AD 2024-02)
$acl = Get-Acl "D:\Shares\audit"
$rules = @(
    @{ Sid = '{V}'; Rights = 'ReadAndExecute' },   # OLB\GG_Audit_Readers
    @{ Sid = '{V2}'; Rights = 'Modify' },          # OLB\GG_Audit_Editors
    @{ Sid = '{V3}'; Rights = 'FullControl' }      # OLB\svc_backup
)
foreach ($r in $rules) {
    $sid = New-Object System.Security.Principal.SecurityIdentifier($r.Sid)
    $acl.AddAccessRule((New-Object System.Security.AccessControl.FileSystemAccessRule($sid, $r.Rights, 'ContainerInherit,ObjectInherit', 'None', 'Allow')))
}
Set-Acl "D:\Shares\audit" $acl
""",
        "t28_sid",
        False,
    ),
    _t(
        "infra/windows/scripts/Export-SvcCredential.ps1",
        r"""
# Exported with: Read-Host -AsSecureString | ConvertFrom-SecureString
# Only decryptable by svc_report on olbrep01 (DPAPI, CurrentUser scope).
$encrypted = '{V}'
$secure = $encrypted | ConvertTo-SecureString
$cred = New-Object System.Management.Automation.PSCredential('OLB\svc_report', $secure)
Start-Process -FilePath "C:\olb\bin\ReportAgent.exe" -Credential $cred
""",
        "t28_dpapi",
        False,
    ),
    _t(
        "infra/windows/unattend/autounattend-pobocka.xml",
        r"""
<?xml version="1.0" encoding="utf-8"?>
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
        <Username>Administrator</Username>
        <Password><Value>{V}</Value><PlainText>true</PlainText></Password>
        <Enabled>true</Enabled>
        <LogonCount>1</LogonCount>
      </AutoLogon>
      <TimeZone>Central Europe Standard Time</TimeZone>
    </component>
  </settings>
</unattend>
""",
        "t28_pw",
        True,
    ),
    _t(
        "infra/windows/ldap/sync_pobocky.vbs",
        r"""
' Synchronizace seznamu pobocek z AD do reportingu (stary skript, bezi na olbrep01)
Option Explicit
Dim conn, cmd, rs
Set conn = CreateObject("ADODB.Connection")
conn.Provider = "ADsDSOObject"
conn.Properties("User ID") = "OLB\svc_ldapread"
conn.Properties("Password") = "{V}"
conn.Properties("Encrypt Password") = True
conn.Open "Active Directory Provider"
Set cmd = CreateObject("ADODB.Command")
Set cmd.ActiveConnection = conn
cmd.CommandText = "<LDAP://OU=Pobocky,DC=olb,DC=local>;(objectClass=organizationalUnit);name,description;subtree"
Set rs = cmd.Execute
""",
        "t28_pw",
        True,
    ),
    # ================================================================== analytics: SAS and R
    _t(
        "analytics/sas/autoexec_prod.sas",
        r"""
/* autoexec pro SAS Grid (sasgrid01) - produkcni knihovny DWH */
options compress=yes fullstimer;

libname dwh oracle user=sas_dwh password="{V}" path=DWHPRD schema=DWH readbuff=5000;
libname core db2 datasrc=DSNPRD1 user=OLBSAS01 password="{V2}" schema=OLBCORE;
libname mrt "/sasdata/olb/mart";

%let dwh_refresh = %sysfunc(today(), yymmdd10.);
""",
        "t28_pw",
        True,
    ),
    _t(
        "analytics/sas/macros/connect_dwh.sas",
        r"""
/* Heslo do DWH se cte z metadat / prostredi, nikdy ho sem nepiste. */
%macro connect_dwh(lib=dwh);
  %global dwh_pw;
  %let dwh_pw = %sysget(DWH_PASSWORD);
  libname &lib. oracle user=sas_dwh password={V} path=DWHPRD schema=DWH;
  libname core db2 datasrc=DSNPRD1 user=OLBSAS01 password={V2} schema=OLBCORE;
%mend connect_dwh;
""",
        "t28_sas_ref",
        False,
    ),
    _t(
        "analytics/r/credit_scoring/R/db.R",
        r"""
# Pripojeni k DWH pro model PD (retail CZ/PT)
library(DBI)
library(odbc)

dwh_connect <- function() {
  dbConnect(
    odbc::odbc(),
    Driver = "Oracle 19 ODBC driver",
    DBQ = "orapt-scan.lis.olb.local:1521/DWHPRD",
    UID = "R_SCORING",
    PWD = "{V}"
  )
}
""",
        "t28_oracle_pw",
        True,
    ),
    _t(
        "analytics/r/credit_scoring/R/db_secure.R",
        r"""
# Bezpecna varianta - heslo z keyringu nebo promenne prostredi
library(DBI)

dwh_connect_secure <- function(user = "R_SCORING") {
  pwd <- {V}
  if (identical(pwd, "")) pwd <- {V2}
  dbConnect(odbc::odbc(), Driver = "Oracle 19 ODBC driver",
            DBQ = "orapt-scan.lis.olb.local:1521/DWHPRD", UID = user, PWD = pwd)
}
""",
        "t28_r_ref",
        False,
    ),
    _t(
        "analytics/r/shiny-dashboard/app.R",
        r"""
library(shiny)
library(shinymanager)

credentials <- data.frame(
  user = c("risco", "diretoria"),
  password = c("{V}", "{V2}"),
  admin = c(FALSE, TRUE),
  stringsAsFactors = FALSE
)

ui <- secure_app(fluidPage(titlePanel("Carteira de crédito PT/BR"), plotOutput("npl")))
server <- function(input, output, session) {
  secure_server(check_credentials = check_credentials(credentials))
}
shinyApp(ui, server)
""",
        "t28_weak_pw",
        True,
    ),
    _t(
        "analytics/notebooks/churn_pt_clientes.ipynb",
        r"""
{
 "cells": [
  {
   "cell_type": "code",
   "execution_count": 1,
   "metadata": {},
   "outputs": [],
   "source": [
    "import oracledb\n",
    "import pandas as pd\n",
    "conn = oracledb.connect(user=\"DWH_ANALISE\", password=\"{V}\", dsn=\"orapt-scan.lis.olb.local/DWHPRD\")\n",
    "df = pd.read_sql(\"select * from dwh.clientes_pt where dt_ref = date '2024-05-31'\", conn)\n"
   ]
  },
  {
   "cell_type": "code",
   "execution_count": 2,
   "metadata": {},
   "outputs": [{"name": "stdout", "output_type": "stream", "text": ["(184220, 37)\n"]}],
   "source": ["print(df.shape)"]
  }
 ],
 "metadata": {"kernelspec": {"display_name": "Python 3 (analytics)", "language": "python", "name": "python3"}},
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
        "t28_pw",
        True,
    ),
    # ================================================================== Airflow
    _t(
        "airflow/dags/eod_ledger_export.py",
        r"""
from datetime import datetime

from airflow import DAG
from airflow.hooks.base import BaseHook
from airflow.operators.python import PythonOperator
from airflow.providers.oracle.operators.oracle import OracleOperator


def _export(**context):
    password = {V}
    from olb.etl.ledger import export_eod

    export_eod(context["ds"], db2_password=password)


with DAG("eod_ledger_export", start_date=datetime(2024, 1, 1), schedule="30 22 * * 1-5", catchup=False) as dag:
    export = PythonOperator(task_id="export", python_callable=_export)
    mark = OracleOperator(
        task_id="mark_done",
        oracle_conn_id="oracle_dwh",
        sql="begin dwh.etl_mark('LEDGER_EOD', to_date('{{ ds }}','YYYY-MM-DD')); end;",
    )
    export >> mark
""",
        "t28_airflow_ref",
        False,
    ),
    _t(
        "airflow/dags/pix_reconciliation.py",
        r"""
from datetime import datetime, timedelta

import requests
from airflow.decorators import dag, task

PIX_BASE_URL = "https://pix.psp-provedor.com.br/api/v2"
PIX_CLIENT_ID = "olb-pix-prd-01"
PIX_CLIENT_SECRET = "{V}"


@dag(start_date=datetime(2024, 3, 1), schedule="0 6 * * *", catchup=False, tags=["pix", "conciliacao"])
def pix_reconciliation():
    @task(retries=3, retry_delay=timedelta(minutes=5))
    def fetch_token() -> str:
        r = requests.post(
            f"{PIX_BASE_URL}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(PIX_CLIENT_ID, PIX_CLIENT_SECRET),
            timeout=30,
        )
        r.raise_for_status()
        return r.json()["access_token"]

    fetch_token()


pix_reconciliation()
""",
        "t28_client_secret",
        True,
    ),
    _t(
        "airflow/config/airflow.cfg",
        r"""
[core]
dags_folder = /opt/airflow/dags
executor = CeleryExecutor
load_examples = False
fernet_key = {V}

[database]
sql_alchemy_conn_cmd = cat /run/secrets/airflow_db_uri

[webserver]
base_url = https://airflow.dwh.olb.local
secret_key = {V2}

[celery]
broker_url = redis://airflow-redis.dwh.olb.local:6379/0
""",
        "t28_fernet",
        True,
    ),
    _t(
        "airflow/.env",
        r"""
AIRFLOW_UID=50000
AIRFLOW_CONN_ORACLE_DWH=oracle://DWH_ETL:{V}@orapt-scan.lis.olb.local:1521/?service_name=DWHPRD
AIRFLOW_CONN_DB2_CORE=db2://OLBAIR01:{V2}@db2prd01.core.olb.local:50000/DSNPRD1
AIRFLOW_CONN_SFTP_BANXICO=sftp://olbmx_sftp:{V3}@sftp.banxico-link.olb.local:22
""",
        "t28_url_pw",
        True,
    ),
    _t(
        "airflow/variables/prod_variables.json",
        r"""
{
  "dwh_env": "prod",
  "notify_emails": ["dwh-ops@olbanca.cz", "dados@olbanca.pt"],
  "sendgrid_api_key": "{V}",
  "sendgrid_api_key_mx": "{V2}"
}
""",
        "t28_sendgrid",
        True,
    ),
    _t(
        "airflow/variables/variables.example.json",
        r"""
{
  "dwh_env": "dev",
  "notify_emails": ["you@olbanca.cz"],
  "sendgrid_api_key": "{V}",
  "pix_client_secret": "{V2}",
  "spei": {"key_passphrase": "{V3}"}
}
""",
        "t28_placeholder",
        False,
    ),
    _t(
        "airflow/tests/dags/test_connections.py",
        r"""
import os
from unittest import mock

import pytest
from airflow.models import Connection


@pytest.fixture(autouse=True)
def fake_connections():
    conn = Connection(conn_id="oracle_dwh", conn_type="oracle", login="dwh_test", password="{V}", host="localhost")
    with mock.patch.dict(os.environ, {"AIRFLOW_CONN_ORACLE_DWH": conn.get_uri(), "PIX_CLIENT_SECRET": "{V2}"}):
        yield


def test_dag_loads(dagbag):
    assert "eod_ledger_export" in dagbag.dags
""",
        "t28_fake",
        False,
    ),
    _t(
        "infra/helm/airflow/values-prod.yaml",
        r"""
# apache-airflow/airflow chart, DWH cluster (aks-olb-dwh-prd)
executor: CeleryExecutor
fernetKey: "{V}"
webserverSecretKeySecretName: airflow-webserver-secret
data:
  metadataSecretName: airflow-metadata-db
workers:
  replicas: 4
""",
        "t28_fernet",
        True,
    ),
    # ================================================================== CI: Jenkins and Azure DevOps
    _t(
        "ci/jenkins/Jenkinsfile.core-bridge",
        r"""
pipeline {
    agent { label 'olb-build-linux' }
    environment {
        SONAR_TOKEN = {V}
        ARTIFACTORY = 'https://olbanca.jfrog.io/artifactory'
    }
    stages {
        stage('Build') {
            steps { sh './mvnw -B -s ci/settings.xml clean verify' }
        }
        stage('Sonar') {
            steps { sh './mvnw -B sonar:sonar -Dsonar.token=$SONAR_TOKEN' }
        }
        stage('Publish') {
            steps {
                withCredentials([usernamePassword(credentialsId: 'olb-artifactory', usernameVariable: 'AU', passwordVariable: 'AP')]) {
                    sh 'curl -fsS -u "$AU:$AP" -T target/core-bridge.jar "$ARTIFACTORY/libs-release/cz/olbanca/core-bridge/"'
                }
            }
        }
    }
}
""",
        "t28_ci_ref",
        False,
    ),
    _t(
        "ci/jenkins/casc/jenkins.yaml",
        r"""
jenkins:
  systemMessage: "OLB Jenkins (Ostrava) - managed by JCasC"
  securityRealm:
    ldap:
      configurations:
        - server: ldaps://dc01.olb.local:636
          rootDN: DC=olb,DC=local
          managerDN: CN=svc_jenkins_ldap,OU=Service,DC=olb,DC=local
          managerPasswordSecret: "{V}"
credentials:
  system:
    domainCredentials:
      - credentials:
          - usernamePassword:
              id: olb-artifactory
              username: svc-jenkins
              password: "{V2}"
""",
        "t28_jenkins_enc",
        False,
    ),
    _t(
        "ci/jenkins/casc/credentials-bootstrap.yaml",
        r"""
# Bootstrap credentials for the new Jenkins controller (olb-jenkins03). Remove after first start!
credentials:
  system:
    domainCredentials:
      - credentials:
          - usernamePassword:
              scope: GLOBAL
              id: olb-artifactory
              username: svc-jenkins
              password: "{V}"
          - usernamePassword:
              scope: GLOBAL
              id: db2-uat
              username: OLBCIU01
              password: "{V2}"
""",
        "t28_pw",
        True,
    ),
    _t(
        "ci/scripts/trigger_remote_build.sh",
        r"""
#!/bin/sh
# Spusti build core-bridge na Jenkinsu z Control-M (po uspesnem EOD).
JENKINS=https://jenkins.olb.local
curl -fsS -X POST -u svc-controlm:{V} "$JENKINS/job/core-bridge/job/main/buildWithParameters?EOD_DATE=$1"
""",
        "t28_jenkins_token",
        True,
    ),
    _t(
        "azure-pipelines/mobile-release.yml",
        r"""
trigger:
  branches:
    include: [release/*]

pool:
  name: OLB-Mac-Agents

variables:
  - group: mobile-release-secrets

steps:
  - task: DownloadSecureFile@1
    name: keystore
    inputs:
      secureFile: olb-release.jks
  - script: |
      ./gradlew :app:bundleRelease \
        -POLB_STORE_PASSWORD={V} \
        -POLB_KEY_PASSWORD={V2}
    workingDirectory: mobile/android
    displayName: Build AAB
""",
        "t28_ci_ref",
        False,
    ),
    _t(
        "azure-pipelines/templates/nuget-push.yml",
        r"""
parameters:
  - name: packagePath
    type: string

steps:
  - script: |
      dotnet nuget push ${{ parameters.packagePath }} \
        --source https://olbanca.jfrog.io/artifactory/api/nuget/v3/nuget-local \
        --api-key {V}
    displayName: Push to Artifactory
""",
        "t28_artifactory",
        True,
    ),
    _t(
        "azure-pipelines/variables/prod.yml",
        r"""
variables:
  environment: prod
  azureSubscription: sc-olb-prod
  AZURE_DEVOPS_EXT_PAT: {V}
  sonarHost: https://sonar.olb.local
""",
        "t28_ado_pat",
        True,
    ),
    _t(
        "scripts/ado/clone_all_repos.sh",
        r"""
#!/usr/bin/env bash
# Naklonuje vsechny repozitare projektu CoreBanking (pro audit EY 2024).
ORG=olbanca
PROJECT=CoreBanking
PAT={V}
for repo in $(curl -s -u ":$PAT" "https://dev.azure.com/$ORG/$PROJECT/_apis/git/repositories?api-version=7.0" | jq -r '.value[].name'); do
  git clone "https://$ORG:$PAT@dev.azure.com/$ORG/$PROJECT/_git/$repo"
done
""",
        "t28_ado_pat",
        True,
    ),
    _t(
        "ci/sonar-project.properties",
        r"""
sonar.projectKey=olb-payments-gateway
sonar.projectName=Payments Gateway
sonar.host.url=https://sonar.olb.local
sonar.token={V}
sonar.sources=src/main
sonar.tests=src/test
sonar.java.binaries=target/classes
""",
        "t28_sonar",
        True,
    ),
    _t(
        "scripts/oss/sync_public_mirror.sh",
        r"""
#!/usr/bin/env bash
# Mirror of the open-sourced ISO 20022 parser (olbanca/iso20022-lite) to GitHub.
set -euo pipefail
GH_TOKEN={V}
git push --mirror "https://olb-oss-bot:${GH_TOKEN}@github.com/olbanca/iso20022-lite.git"
""",
        "t28_github",
        True,
    ),
    _t(
        "ci/jenkins/release-notes/2024-06.md",
        r"""
# Release 2024.06 - core-bridge, payments-gateway

| component | commit | image digest |
|---|---|---|
| core-bridge | {V} | see ACR |
| payments-gateway | {V2} | see ACR |
| pix-gateway | {V3} | see ACR |
""",
        "t28_git_sha",
        False,
    ),
    # ================================================================== IaC: Terraform, Kubernetes, Azure
    _t(
        "infra/terraform/azure/payments/keyvault.tf",
        r"""
resource "azurerm_key_vault_secret" "pix_client_secret" {
  name         = "pix-client-secret"
  value        = {V}
  key_vault_id = azurerm_key_vault.pay.id
}

resource "azurerm_key_vault_secret" "sql_admin" {
  name         = "sql-admin-password"
  value        = {V2}
  key_vault_id = azurerm_key_vault.pay.id
}
""",
        "t28_tf_ref",
        False,
    ),
    _t(
        "infra/terraform/azure/dwh/storage.tf",
        r"""
provider "azurerm" {
  features {}
}

# legacy: the SAS export job still authenticates with the account key
resource "azurerm_storage_container" "sas_exports" {
  name                  = "sas-exports"
  storage_account_name  = "stolbdwhprd01"
  container_access_type = "private"
}

locals {
  dwh_storage_key = "{V}"
}
""",
        "t28_azure_sa_key",
        True,
    ),
    _t(
        "infra/terraform/azure/dwh/terraform.tfvars",
        r"""
location           = "westeurope"
environment        = "prd"
sql_admin_login    = "olbsqladmin"
sql_admin_password = "{V}"
synapse_sql_password = "{V2}"
""",
        "t28_pw",
        True,
    ),
    _t(
        "infra/k8s/brokerage/md-secrets.yaml",
        r"""
apiVersion: v1
kind: Secret
metadata:
  name: md-vendor-keys
  namespace: brokerage
type: Opaque
data:
  POLYGON_API_KEY: {V}
  REFINITIV_APP_KEY: {V2}
""",
        "t28_b64_secret",
        True,
    ),
    _t(
        "infra/k8s/brokerage/md-sealedsecret.yaml",
        r"""
apiVersion: bitnami.com/v1alpha1
kind: SealedSecret
metadata:
  name: md-vendor-keys
  namespace: brokerage
spec:
  encryptedData:
    POLYGON_API_KEY: {V}
    REFINITIV_APP_KEY: {V2}
""",
        "t28_sealed",
        False,
    ),
    _t(
        "infra/k8s/payments/ebics-keys-secret.yaml",
        r"""
apiVersion: v1
kind: Secret
metadata:
  name: ebics-user-keys
  namespace: payments
type: Opaque
stringData:
  SEPAGW01_A006.pem: |
    {IV}
""",
        "t28_rsa_pem",
        True,
    ),
    _t(
        "infra/ansible/group_vars/mq_servers/vault.yml",
        r"""
vault_mq_admin_password: !vault |
  {IV}
vault_mq_app_password: !vault |
  {IV2}
""",
        "t28_ansible_vault",
        False,
    ),
    _t(
        "infra/k8s/payments/servicebus.env",
        r"""
# payments events -> Azure Service Bus (sb-olb-pay-prd)
SERVICEBUS_CONNECTION=Endpoint=sb://sb-olb-pay-prd.servicebus.windows.net/;SharedAccessKeyName=payhub-send;SharedAccessKey={V}
SERVICEBUS_TOPIC=payments.settled
""",
        "t28_sb_key",
        True,
    ),
    _t(
        "infra/azure/appsettings.Production.json",
        r"""
{
  "Logging": { "LogLevel": { "Default": "Warning" } },
  "ConnectionStrings": {
    "Reporting": "Server=tcp:sql-olb-rep-prd.database.windows.net,1433;Database=OLBReporting;User ID=olbrep_app;Password={V};Encrypt=True;",
    "Branches": "Server=SQLREP01\\OLBREP;Database=Pobocky;User Id=pobocky_app;Password={V2};TrustServerCertificate=True"
  },
  "AllowedHosts": "*"
}
""",
        "t28_pw",
        True,
    ),
    _t(
        "infra/azure/appsettings.json",
        r"""
{
  "ConnectionStrings": {
    "Reporting": "Server=tcp:sql-olb-rep-prd.database.windows.net,1433;Database=OLBReporting;Authentication=Active Directory Managed Identity;"
  },
  "Pix": {
    "ClientSecret": "{V}"
  },
  "Spei": {
    "KeyPassphrase": "{V2}"
  }
}
""",
        "t28_kv_ref",
        False,
    ),
    _t(
        "infra/azure/sp-brokerage.json",
        r"""
{
  "displayName": "sp-olb-brokerage-deploy",
  "tenant": "{V}",
  "appId": "{V2}",
  "subscriptionId": "{V3}",
  "note": "secret lives in Key Vault kv-olb-brk, rotated every 90 days"
}
""",
        "t28_guid",
        False,
    ),
    _t(
        "infra/azure/sp-dwh-credentials.json",
        r"""
{
  "appId": "5b1f0a7e-93c4-4d2b-8a61-0f7e2c9d4b13",
  "displayName": "sp-olb-dwh-adf",
  "password": "{V}",
  "tenant": "0c8e7a5d-1f24-4b9e-a3c6-7d2f1e9b8a40"
}
""",
        "t28_azure_secret",
        True,
    ),
    _t(
        "infra/k8s/brokerage/oms-deployment.yaml",
        r"""
apiVersion: apps/v1
kind: Deployment
metadata:
  name: oms
  namespace: brokerage
spec:
  replicas: 2
  template:
    spec:
      containers:
        - name: oms
          image: acrolbprd.azurecr.io/brokerage/oms@{V}
        - name: fix-sidecar
          image: acrolbprd.azurecr.io/brokerage/fix-gw@{V2}
""",
        "t28_docker_digest",
        False,
    ),
    _t(
        "infra/vault/bootstrap_policies.sh",
        r"""
#!/usr/bin/env bash
# one-off: load the payments policies into Vault (vault.pay.olb.local)
export VAULT_ADDR=https://vault.pay.olb.local:8200
export VAULT_TOKEN={V}
vault policy write payhub-read policies/payhub-read.hcl
vault policy write spei-rotate policies/spei-rotate.hcl
""",
        "t28_vault_token",
        True,
    ),
    _t(
        "infra/aws/brokerage-archive/credentials",
        r"""
# S3 archive of FIX drop copies (regulatory retention, 7 years) - brokerage BR
[olb-brk-archive]
{V}
region = sa-east-1
""",
        "t28_aws_pair",
        True,
    ),
    _t(
        "infra/aws/brokerage-archive/README.md",
        r"""
# S3 archive of FIX drop copies

The archive bucket `olb-brk-fix-archive-sa1` is written by the `fix-archiver` job only. To try
the CLI against LocalStack, configure a throw-away profile with the AWS documentation keys:

```ini
[localstack]
{V}
region = sa-east-1
endpoint_url = http://localhost:4566
```

Production credentials come from the instance role; there are no long-lived keys.
""",
        "t28_doc_aws",
        False,
    ),
    # ================================================================== docs, wikis, handover, chat
    _t(
        "docs/audit/predavaci_protokol_2024Q3.md",
        r"""
# Předávací protokol - provoz Core Batch (Q3/2024)

Předává: Petr Král (odchod k 30. 9.), přebírá: Lucie Horáková. Auditor: EY, zakázka OLB-IT-24.

## Servisní účty

| účet | systém | heslo | poznámka |
|---|---|---|---|
| OLBBAT01 | z/OS RACF (batch) | `{V}` | rotace po převzetí! |
| OLBFTP01 | SFTP GW Ostrava | `{V2}` | používá OLBEOD40 |
| svc_controlm | Control-M EM | `{V3}` | |

Po převzetí změnit všechna hesla a uložit je do CyberArk (safe `CORE-BATCH`).
""",
        "t28_racf_pw",
        True,
    ),
    _t(
        "docs/audit/handover_notes_EY_2024.md",
        r"""
# Handover notes for the external audit (EY) - IT general controls 2024

Service accounts in scope and where their credentials are kept. Passwords are **not** included
in this document; auditors receive read access to the vault safes for the walkthrough.

| account | system | password | vault |
|---|---|---|---|
| OLBBAT01 | z/OS RACF | {V} | CyberArk `CORE-BATCH` |
| LEDGER_APP | Oracle LEDGERPRD | {V2} | CyberArk `LEDGER` |
| svc_domainjoin | AD OLB.LOCAL | {V3} | CyberArk `WINTEL` |

Evidence: screenshots of the safe permissions are in `evidence/ITGC-07/`.
""",
        "t28_placeholder",
        False,
    ),
    _t(
        "docs/audit/auditoria_2023_notas_passagem.md",
        r"""
# Notas de passagem - auditoria interna 2023 (Lisboa)

Conforme combinado com a Dra. Helena Matos, seguem os acessos temporários para a equipa de auditoria
(válidos até 15/12):

- Servidor de relatórios `olbrep02` - utilizador `aud_ext01`, senha `{V}`
- Oracle LEDGERPRD (só leitura) - utilizador `AUD_RO`, senha `{V2}`

Pedir ao Service Desk a desativação após o fecho.
""",
        "t28_pw",
        True,
    ),
    _t(
        "docs/wiki/confluence-export/PAGAMENTOS/Configuracao-PIX-Homologacao.html",
        r"""
<html>
<head><title>PAGAMENTOS : Configuração PIX - Homologação</title></head>
<body>
<div id="main-content" class="wiki-content group">
<h1>Configuração PIX - ambiente de homologação</h1>
<p>Criado por Rafael Castro, última atualização em 12 mar. 2024</p>
<p>Credenciais do provedor PSP para homologação (pedidas pelo chamado INC0048812):</p>
<div class="code panel pdl"><div class="codeContent panelContent pdl">
<pre class="syntaxhighlighter-pre">client_id: olb-pix-hml-01
client_secret: {V}
base_url: https://pix-h.psp-provedor.com.br/api/v2</pre>
</div></div>
<p>Para produção, o <code>client_secret</code> é <code>{V2}</code> (trocar depois do go-live!).</p>
</div>
</body>
</html>
""",
        "t28_client_secret",
        True,
    ),
    _t(
        "docs/wiki/confluence-export/SPEI/Guia-de-conexion-STP.html",
        r"""
<html>
<head><title>SPEI : Guía de conexión STP</title></head>
<body>
<div id="main-content" class="wiki-content group">
<h1>Guía de conexión a STP (ambiente demo)</h1>
<p>El siguiente ejemplo usa el servidor de documentación, no el real:</p>
<pre>
curl -X PUT https://demo-stp.example.com/speiws/rest/ordenPago/registra \
  -u demo_olbanca:{V} \
  -H "Content-Type: application/json" -d @orden.json
</pre>
<p>Cadena de conexión de ejemplo: <code>mysql://demo:{V2}@db.example.com:3306/spei</code></p>
<p>Las credenciales reales se solicitan a Seguridad TI (no se publican en Confluence).</p>
</div>
</body>
</html>
""",
        "t28_example_pw",
        False,
    ),
    _t(
        "docs/wiki/core/DB2_pristupy.md",
        r"""
# DB2 přístupy (interní wiki, tým Core Integrace)

> Stránka je jen pro tým CI. Hesla se mění každých 90 dní - aktualizujte tabulku!

| prostředí | subsystém | uživatel | heslo |
|---|---|---|---|
| PROD | DSNPRD1 | OLBBRG01 | {V} |
| UAT | DSNUAT1 | OLBREPU1 | {V2} |
| DEV | DSNDEV1 | OLBDEV01 | {V3} |

Připojení z notebooku: `db2 connect to DSNUAT1 user OLBREPU1 using <heslo>`.
""",
        "t28_racf_pw",
        True,
    ),
    _t(
        "docs/wiki/mobile/Releasing.md",
        r"""
# Releasing the mobile apps

1. Bump `versionCode`/`versionName` in `app/build.gradle.kts` and the iOS build number.
2. The Android keystore password is stored in Key Vault `kv-olb-mobile` under the secret
   `{V}`; the upload key password is under `{V2}`.
3. Run the `mobile-release` pipeline in Azure DevOps; it reads both through the variable group.
4. iOS: fastlane `match` uses the passphrase from the same variable group.
""",
        "t28_key_name",
        False,
    ),
    _t(
        "docs/wiki/security/politica-de-senhas.md",
        r"""
# Política de senhas (OLB Grupo) - resumo

- Comprimento mínimo para utilizadores: {V} caracteres.
- Contas de serviço: mínimo {V2} caracteres, rotação a cada 90 dias.
- Histórico: as últimas {V3} senhas não podem ser reutilizadas.
- Bloqueio após 5 tentativas falhadas (30 minutos).
""",
        "t28_policy",
        False,
    ),
    _t(
        "docs/runbooks/mq-failover_pt.md",
        r"""
# Runbook - failover do IBM MQ (OLBQM01 → site DR Porto)

1. Confirmar com o NOC que o site de Lisboa está indisponível.
2. Entrar em `mqdr01.por.olb.local` como `mqm` (senha local de emergência: `{V}`).
3. `strmqm -x OLBQM01` e verificar canais: `echo "DIS CHS(*)" | runmqsc OLBQM01`.
4. Atualizar o CCDT no Azure App Configuration.
""",
        "t28_weak_pw",
        True,
    ),
    _t(
        "docs/runbooks/hsm-ceremony_cs.md",
        r"""
# Postup - obřad výměny klíčů (payShield 10K)

Kontrolní hodnoty (KCV) pro ověření po zadání komponent - nejsou tajné, slouží jen ke kontrole:

- ZMK Banxico: KCV `{V}`
- ZPK ATM CZ: KCV `{V2}`
- TMK pobočky: KCV `{V3}`

Komponenty samotné nikdy nezapisujte do wiki ani do tiketu.
""",
        "t28_kcv",
        False,
    ),
    _t(
        "docs/chat/teams-export-payments-mx-2024-05.json",
        r"""
{
  "channel": "Pagos MX - SPEI",
  "exportedAt": "2024-06-01T08:00:00Z",
  "messages": [
    {"from": "Luis Ortega", "createdDateTime": "2024-05-14T16:02:11Z", "body": "¿alguien tiene el acceso al SFTP de Banxico? se cayó el job de las 7"},
    {"from": "Ana Ramírez", "createdDateTime": "2024-05-14T16:04:37Z", "body": "usuario olbmx_sftp, contraseña {V} - no la compartas por correo"},
    {"from": "Luis Ortega", "createdDateTime": "2024-05-14T16:05:02Z", "body": "gracias, ya quedó"}
  ]
}
""",
        "t28_pw",
        True,
    ),
    _t(
        "docs/chat/slack-export/core-ops/2024-03-11.json",
        r"""
[
  {
    "type": "message",
    "user": "U04K7PZ2M1Q",
    "text": "ADO pipeline for core-bridge fails on checkout, I used my PAT for now: {V} (expires in 7 days)",
    "ts": "1710163321.004219"
  },
  {
    "type": "message",
    "user": "U03R9QW8N5T",
    "text": "please don't paste PATs here :facepalm: revoke it and use the service connection",
    "ts": "1710163390.004501"
  }
]
""",
        "t28_ado_pat",
        True,
    ),
    _t(
        "docs/chat/slack-export/brokerage-dev/2024-04-02.json",
        r"""
[
  {
    "type": "message",
    "user": "U05B1MX7Q2A",
    "text": "for local testing just use `MD_API_KEY={V}` - the mock server accepts anything",
    "ts": "1712046001.000200"
  },
  {
    "type": "message",
    "user": "U05B1MX7Q2A",
    "text": "and the FIX acceptor in docker uses password `{V2}`, it's in tests/fakes",
    "ts": "1712046055.000300"
  }
]
""",
        "t28_fake",
        False,
    ),
    # ================================================================== ops tooling and misc
    _t(
        "ops/alerting/teams_notify.py",
        r"""
import json
import sys
import urllib.request

WEBHOOK = "{V}"


def notify(title: str, text: str) -> None:
    payload = {"@type": "MessageCard", "@context": "https://schema.org/extensions", "title": title, "text": text}
    req = urllib.request.Request(WEBHOOK, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=10).close()


if __name__ == "__main__":
    notify(sys.argv[1], sys.argv[2])
""",
        "t28_teams_webhook",
        True,
    ),
    _t(
        "ops/alerting/slack_notify.sh",
        r"""
#!/bin/sh
# Alert do #core-ops pri padu EOD jobu (vola Control-M on-failure)
HOOK="{V}"
curl -s -X POST -H 'Content-type: application/json' \
  --data "{\"text\":\":rotating_light: EOD job $1 skoncil s RC=$2\"}" "$HOOK"
""",
        "t28_slack_webhook",
        True,
    ),
    _t(
        "ops/alerting/README.md",
        r"""
# ops/alerting

Small helpers that post to Slack and Teams. Configure the webhook through the environment, for
example (this is Slack's documentation value, not ours):

```bash
export SLACK_WEBHOOK_URL={V}
./slack_notify.sh OLBEOD40 12
```
""",
        "t28_doc_webhook",
        False,
    ),
    _t(
        "core-bridge/src/test/java/cz/olbanca/bridge/auth/JwtFilterTest.java",
        r"""
package cz.olbanca.bridge.auth;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

class JwtFilterTest {

    // Sample token from the jwt.io docs; signature does not match our key on purpose.
    private static final String SAMPLE = "{V}";

    @Test
    void rejectsForeignSignature() {
        assertThat(new JwtFilter("test-key").isValid(SAMPLE)).isFalse();
    }
}
""",
        "t28_doc_jwt",
        False,
    ),
    _t(
        "ops/sms/otp_sender.py",
        r"""
# OTP por SMS (Brasil/México) via Twilio - serviço legado, a substituir pelo gateway da operadora
from twilio.rest import Client

ACCOUNT_SID = "AC3f9e2b7d41c058a6e1d2f3b4c5a6d7e8"
AUTH_TOKEN = "{V}"

client = Client(ACCOUNT_SID, AUTH_TOKEN)


def send_otp(phone: str, code: str) -> str:
    msg = client.messages.create(to=phone, from_="+5511400012345", body=f"OLB Banca: seu código é {code}")
    return msg.sid
""",
        "t28_twilio",
        True,
    ),
    _t(
        "infra/ssh/authorized_keys.payments-sftp",
        r"""
# authorized_keys for svc_sftp on pay-sftp01 (managed by Ansible role olb.sftp)
{V}
{V2}
{V3}
""",
        "t28_ssh_pub",
        False,
    ),
    _t(
        "infra/ssh/keys/id_ed25519_banxico_sftp",
        r"""
{V}
""",
        "t28_openssh",
        True,
    ),
    _t(
        "core-batch/ldap/olb-users.ldif",
        r"""
# export z OpenLDAP pro SAS metadata server (jen technicke ucty)
dn: uid=sas_dwh,ou=service,dc=olb,dc=local
objectClass: inetOrgPerson
uid: sas_dwh
cn: SAS DWH service
userPassword: {V}

dn: uid=r_scoring,ou=service,dc=olb,dc=local
objectClass: inetOrgPerson
uid: r_scoring
cn: R scoring service
userPassword: {V2}
""",
        "t28_pw_hash",
        False,
    ),
    _t(
        "brokerage/webapp/users_seed.sql",
        r"""
-- Seed de utilizadores internos da plataforma de corretagem (hashes gerados pelo Django)
INSERT INTO auth_user (username, password, is_staff, is_superuser) VALUES
  ('mesa.acoes', '{V}', true, false),
  ('compliance', '{V2}', true, false),
  ('admin', '{V3}', true, true);
""",
        "t28_pw_hash",
        False,
    ),
    _t(
        "payments/swift/alliance/certs/olb_saa_client.crt",
        r"""
{V}
""",
        "t28_cert",
        False,
    ),
]
