"""Blind part ``heldout20``: a national sports federation and its ticketing and streaming arm,
the Federación Atlántica de Deportes / Atlantic Sports Federation (FAD: the ``taquilla`` ticketing
platform, the ``FAD TV`` live-streaming service, league and club management apps, and the
federation's stadiums). Files are ticketing code and config (Laravel ``.env`` files, PHP service
configs, payment gateway clients for Stripe, Redsys, Adyen, Mercado Pago and PayPal in PHP and
Node/TypeScript, QR ticket signing keys and their public halves, ``.npmrc`` and Composer auth),
the live-streaming stack (OBS profiles, RTMP/SRT ingest stream keys, Wowza ``publish.password``,
``admin.password`` and SecureToken settings, nginx-rtmp, ffmpeg push scripts, Akamai and
CloudFront URL signing, Widevine/PlayReady DRM key material, Mux), club and league apps (Django
settings and fixtures, Rails ``master.key``, ``database.yml`` and storage config, Flutter
``key.properties``, Dart clients, Fastlane, Codemagic), stadium operations (turnstile controllers,
SCADA HMI projects and Siemens PLC scripts, CCTV NVR inventories and ONVIF/RTSP pollers, press box
Wi-Fi ``hostapd`` and RADIUS users, digital signage players, SNMP and switch configs, BACnet
gateways), referee and anti-doping databases (Oracle users and ``sqlplus`` batches, SQL Server
logins, .NET ``appsettings`` and ``web.config``, Spring properties, WADA ADAMS sync jobs),
volunteer onboarding docs and CSV exports, federation IT scripts (PowerShell, Bash, Python,
Ansible inventories, vaults and role defaults, SSH deploy keys, TLS certificates), GitLab CI and
runners, Helm charts and Kubernetes secrets, Terraform on Azure and GCP (tfvars, state, service
account JSON), alerting to Teams, Slack, Telegram, WhatsApp, Twilio and SendGrid, Datadog and
Vault agent configs, plus Spanish, Portuguese, French and English wikis and runbooks, WhatsApp and
Teams chat exports and Jupyter notebooks. Written blind (without seeing the scanner, its rules or
other parts' templates).

Look-alikes sit in the same kinds of files under the same key names: password hashes (Laravel
and Devise bcrypt, Django PBKDF2, argon2, ``sha512crypt``, Oracle 12c ``S:``/``T:`` verifiers,
SQL Server ``0x0200`` hashes, Cisco type 8/9 and ``apr1``), values encrypted at rest (Laravel
encrypted payloads, Rails credentials, Ansible Vault, SOPS, sealed secrets, Jasypt ``ENC(...)``,
DPAPI blobs from ``Export-Clixml`` and ``web.config``, encrypted PEM keys), references to
environment variables and secret stores in every language and tool (PHP, JS/TS, Python, Ruby,
Dart, Go, C#, Java, PowerShell, shell, GitLab CI, Helm, Terraform, Ansible, Azure Key Vault),
placeholders and redactions in four languages, public material (certificates, public PEM and SSH
keys, Stripe ``pk_live_`` keys, Mercado Pago public keys, Adyen client keys), identifiers shaped
like secrets (DRM key ids, Azure tenant and subscription ids, ticket and anti-doping sample codes,
MAC addresses and serials, UUIDs, git SHAs, digests, SRI and lockfile checksums, stream names),
UI text about passwords in Spanish, Portuguese, French and English, documented example
credentials (AWS ``EXAMPLE`` keys) and credentials on documentation hosts, and test values that
say they are fake.
"""

from __future__ import annotations

import base64
import hashlib
import json
import string
import textwrap
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
PW_SYMBOLS = "!#%*-_=+.@"
CRYPT64 = "./" + ALNUM


class Heldout20Values(evalset.Values):
    """Value generators of the heldout20 part; every name starts with ``h20_``."""

    def __init__(self, seed: int, flavour: str) -> None:
        super().__init__(seed, flavour)
        self.words = [
            "estadio",
            "taquilla",
            "arbitro",
            "porteria",
            "delantero",
            "tribuna",
            "marcador",
            "balon",
            "cancha",
            "golazo",
            "remate",
            "torcida",
            "gradas",
            "vestuario",
            "penalti",
            "banquillo",
            "atlantico",
            "goleador",
        ]
        self.users = [
            "taquilla_app",
            "streaming",
            "ligas",
            "arbitraje",
            "antidopaje",
            "voluntarios",
            "ingest",
            "deploy",
            "scada",
            "signage",
        ]

    # ------------------------------------------------------------------ helpers (not slots)
    def h20_util_b64(self, n: int, urlsafe: bool = False, pad: bool = True) -> str:
        raw = self.rng.randbytes(n)
        out = base64.urlsafe_b64encode(raw) if urlsafe else base64.b64encode(raw)
        text = out.decode()
        return text if pad else text.rstrip("=")

    def h20_util_armor(self, label: str, der: bytes, width: int = 64) -> str:
        body = base64.b64encode(der).decode()
        rows = [body[i : i + width] for i in range(0, len(body), width)]
        return f"-----BEGIN {label}-----\n" + "\n".join(rows) + f"\n-----END {label}-----"

    def h20_util_crc_token(self, prefix: str) -> str:
        body = self.s(30, ALNUM)
        crc = zlib.crc32(body.encode())
        check = ""
        while crc:
            crc, rest = divmod(crc, 62)
            check = B62[rest] + check
        return f"{prefix}_{body}{check.rjust(6, '0')}"

    def h20_util_uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    # ------------------------------------------------------------------ positives: passwords
    def h20_pw(self) -> str:
        shape = self.rng.randrange(7)
        word = self.pick(self.words)
        if shape == 0:
            return word.capitalize() + str(self.rng.randrange(10, 9999)) + self.pick(list("!#%*.+"))
        if shape == 1:
            return self.s(1, string.ascii_letters) + self.s(
                self.rng.randrange(13, 21), ALNUM + PW_SYMBOLS
            )
        if shape == 2:
            other = self.pick([w for w in self.words if w != word])
            return f"{word.capitalize()}.{other.capitalize()}.{self.s(2, DIGITS)}"
        if shape == 3:
            return "Fad" + self.s(11, ALNUM) + self.pick(list("!#%"))
        if shape == 4:
            return self.s(16, ALNUM)
        if shape == 5:
            leet = word.replace("a", "@").replace("o", "0").replace("e", "3")
            return leet[0].upper() + leet[1:] + "#" + self.s(4, DIGITS)
        other = self.pick([w for w in self.words if w != word])
        return word + other + self.s(2, DIGITS)

    def h20_weak_pw(self) -> str:
        shape = self.rng.randrange(4)
        if shape == 0:
            return self.pick(
                [
                    "Atlantica2024",
                    "Federacion1",
                    "futbol123",
                    "Senha@123",
                    "Temporal01",
                    "Bienvenido1",
                    "admin123",
                    "Welcome1",
                    "Cambiame1",
                    "Voluntario24",
                    "operador",
                    "estadio1",
                    "Password1!",
                    "fad2023",
                ]
            )
        if shape == 1:
            return "Fad" + str(self.rng.randrange(2016, 2026)) + self.pick(["", "!", "#", "*"])
        if shape == 2:
            return self.pick(self.words) + self.pick(["1", "123", "2024", "!", "01"])
        return self.pick(["Verano", "Invierno", "Primavera", "Otono", "Liga", "Copa"]) + str(
            self.rng.randrange(2019, 2026)
        )

    def h20_url_pw(self) -> str:
        shape = self.rng.randrange(3)
        if shape == 0:
            return self.pick(self.words).capitalize() + self.s(4, DIGITS)
        if shape == 1:
            return self.s(1, string.ascii_letters) + self.s(
                self.rng.randrange(13, 22), ALNUM + "-_."
            )
        return self.s(20, ALNUM)

    def h20_db_pw(self) -> str:
        body = self.s(1, string.ascii_uppercase) + self.s(self.rng.randrange(9, 15), ALNUM)
        cut = self.rng.randrange(3, len(body))
        return body[:cut] + self.pick(["#", "_", "#", "_", "$"]) + body[cut:] + self.s(2, DIGITS)

    def h20_wifi_psk(self) -> str:
        shape = self.rng.randrange(4)
        if shape == 0:
            return self.pick(["Prensa", "Tribuna", "Palco", "Media"]) + "FAD-" + self.s(4, DIGITS)
        if shape == 1:
            return "-".join(self.pick(self.words) for _ in range(3)) + self.s(2, DIGITS)
        if shape == 2:
            return self.s(self.rng.randrange(12, 21), ALNUM)
        return self.pick(self.words).capitalize() + "Norte" + self.s(3, DIGITS) + "!"

    def h20_snmp(self) -> str:
        shape = self.rng.randrange(3)
        if shape == 0:
            return "fad" + self.pick(self.words) + self.s(2, DIGITS)
        if shape == 1:
            return "n0c-" + self.s(10, LOWNUM)
        return self.s(16, ALNUM)

    def h20_b64_pw(self) -> str:
        return base64.b64encode(self.h20_pw().encode()).decode()

    def h20_basic(self) -> str:
        user = self.pick([*self.users, "gitlab-ci", "fad-monitor"])
        return base64.b64encode(f"{user}:{self.h20_pw()}".encode()).decode()

    # ------------------------------------------------------------------ positives: streaming
    def h20_stream_key(self) -> str:
        shape = self.rng.randrange(5)
        if shape == 0:  # YouTube Live
            return "-".join(self.s(4, LOWNUM) for _ in range(5))
        if shape == 1:  # Twitch
            return f"live_{self.rng.randrange(10**8, 10**9)}_{self.s(30, ALNUM)}"
        if shape == 2:  # Facebook Live
            return f"FB-{self.rng.randrange(10**14, 10**15)}-0-Ab{self.s(22, URLSAFE)}"
        if shape == 3:  # own ingest
            return "fadtv_" + self.s(24, LOWNUM)
        return self.s(20, ALNUM)

    def h20_yt_key(self) -> str:
        return "-".join(self.s(4, LOWNUM) for _ in range(5))

    def h20_twitch_key(self) -> str:
        return f"live_{self.rng.randrange(10**8, 10**9)}_{self.s(30, ALNUM)}"

    def h20_srt_pass(self) -> str:
        if self.rng.randrange(2):
            return self.s(self.rng.randrange(16, 33), ALNUM)
        return "".join(w.capitalize() for w in (self.pick(self.words) for _ in range(3))) + self.s(
            3, DIGITS
        )

    def h20_hex_key(self) -> str:
        return self.s(self.rng.choice([32, 64, 64]), HEX)

    def h20_drm_seed(self) -> str:
        return self.h20_util_b64(30)

    def h20_shared_secret(self) -> str:
        shape = self.rng.randrange(3)
        if shape == 0:
            return self.s(self.rng.randrange(16, 33), ALNUM)
        if shape == 1:
            return self.s(32, HEX)
        return self.pick(self.words) + "-" + self.s(12, ALNUM)

    def h20_mux_secret(self) -> str:
        return self.h20_util_b64(56)

    # ------------------------------------------------------------------ positives: apps
    def h20_app_key(self) -> str:
        return "base64:" + self.h20_util_b64(32)

    def h20_django_key(self) -> str:
        prefix = self.pick(["django-insecure-", "", ""])
        return prefix + self.s(50, string.ascii_lowercase + DIGITS + "!@#%^&*(-_=+)")

    def h20_rails_master(self) -> str:
        return self.s(32, HEX)

    def h20_secret_key_base(self) -> str:
        return self.s(128, HEX)

    def h20_jwt_secret(self) -> str:
        shape = self.rng.randrange(3)
        if shape == 0:
            return self.s(64, HEX)
        if shape == 1:
            return self.h20_util_b64(48)
        return "fad-" + self.pick(self.words) + "-" + self.s(24, ALNUM)

    def h20_qr_key(self) -> str:
        # An Ed25519 private key in PKCS#8 (three lines of PEM).
        der = bytes.fromhex("302e020100300506032b657004220420") + self.rng.randbytes(32)
        return self.h20_util_armor("PRIVATE KEY", der)

    def h20_api_key(self) -> str:
        shape = self.rng.randrange(3)
        if shape == 0:
            return "fad_live_" + self.s(32, ALNUM)
        if shape == 1:
            return "sgn_" + self.s(32, HEX)
        return self.s(40, ALNUM)

    def h20_fcm_key(self) -> str:
        return f"AAAA{self.s(7, URLSAFE)}:APA91b{self.s(134, URLSAFE)}"

    def h20_apple_asp(self) -> str:
        return "-".join(self.s(4, string.ascii_lowercase) for _ in range(4))

    def h20_jwt(self) -> str:
        def part(obj: dict[str, object]) -> str:
            raw = json.dumps(obj, separators=(",", ":")).encode()
            return base64.urlsafe_b64encode(raw).decode().rstrip("=")

        alg = self.pick(["HS256", "RS256"])
        header = part({"alg": alg, "typ": "JWT"})
        iat = 1714000000 + self.rng.randrange(10**7)
        payload = part(
            {
                "iss": "https://auth.fad-atlantica.org",
                "sub": self.h20_util_uuid(),
                "roles": [self.pick(["taquilla_admin", "ops", "streaming_ops", "arbitro"])],
                "iat": iat,
                "exp": iat + 86400,
            }
        )
        sig_len = 32 if alg == "HS256" else 256
        sig = self.h20_util_b64(sig_len, urlsafe=True, pad=False)
        return f"{header}.{payload}.{sig}"

    # ------------------------------------------------------------------ positives: payments
    def h20_stripe(self) -> str:
        prefix = self.pick(["sk_live_", "sk_live_", "rk_live_"])
        return prefix + self.s(self.rng.choice([24, 99]), ALNUM)

    def h20_whsec(self) -> str:
        return "whsec_" + self.s(32, ALNUM)

    def h20_mercadopago(self) -> str:
        return (
            f"APP_USR-{self.s(16, DIGITS)}-{self.s(6, DIGITS)}-{self.s(32, HEX)}-"
            f"{self.s(9, DIGITS)}"
        )

    def h20_redsys(self) -> str:
        return self.h20_util_b64(24)

    def h20_adyen(self) -> str:
        return (
            "AQE"
            + self.s(1, "hkpy")
            + self.s(60, ALNUM + "/+")
            + "=="
            + "-"
            + self.h20_util_b64(32)
            + "-"
            + self.s(16, ALNUM + "<>{}[]()")
        )

    def h20_paypal(self) -> str:
        return "E" + self.s(79, URLSAFE)

    # ------------------------------------------------------------------ positives: platforms
    def h20_github(self) -> str:
        return self.h20_util_crc_token(self.pick(["ghp", "ghp", "gho"]))

    def h20_npm(self) -> str:
        return self.h20_util_crc_token("npm")

    def h20_gitlab(self) -> str:
        return "glpat-" + self.s(20, URLSAFE)

    def h20_gitlab_runner(self) -> str:
        if self.rng.randrange(3):
            return "glrt-" + self.s(20, URLSAFE)
        return "GR1348941" + self.s(20, URLSAFE)

    def h20_docker_pat(self) -> str:
        return "dckr_pat_" + self.s(27, URLSAFE)

    def h20_sonar(self) -> str:
        return self.pick(["sqp_", "squ_", "sqa_"]) + self.s(40, HEX)

    def h20_azure_secret(self) -> str:
        return self.s(3, ALNUM + "_~.") + self.s(1, DIGITS) + "Q~" + self.s(34, ALNUM + "_~.-")

    def h20_azure_storage_key(self) -> str:
        return self.h20_util_b64(64)

    def h20_gcp_key(self) -> str:
        der = bytes.fromhex("308204bd020100300d06092a864886f70d0101010500048204a7") + (
            self.rng.randbytes(1193)
        )
        return self.h20_util_armor("PRIVATE KEY", der).replace("\n", "\\n") + "\\n"

    def h20_rsa_pem(self) -> str:
        der = bytes.fromhex("308204a40201000282010100") + self.rng.randbytes(1180)
        return self.h20_util_armor("RSA PRIVATE KEY", der)

    def h20_pkcs8(self) -> str:
        der = bytes.fromhex("308204be020100300d06092a864886f70d0101010500048204a8") + (
            self.rng.randbytes(1194)
        )
        return self.h20_util_armor("PRIVATE KEY", der)

    def h20_ec_pem(self) -> str:
        der = (
            bytes.fromhex("30770201010420")
            + self.rng.randbytes(32)
            + bytes.fromhex("a00a06082a8648ce3d030107a144034200")
            + b"\x04"
            + self.rng.randbytes(64)
        )
        return self.h20_util_armor("EC PRIVATE KEY", der)

    def h20_openssh(self) -> str:
        pub = self.rng.randbytes(32)
        blob = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + pub
        check = self.rng.randbytes(4)
        priv = (
            check
            + check
            + blob
            + b"\x00\x00\x00\x40"
            + self.rng.randbytes(32)
            + pub
            + b"\x00\x00\x00\x0edeploy@fad-ci"
            + bytes(range(1, 6))
        )
        der = (
            b"openssh-key-v1\x00"
            + b"\x00\x00\x00\x04none\x00\x00\x00\x04none\x00\x00\x00\x00\x00\x00\x00\x01"
            + len(blob).to_bytes(4, "big")
            + blob
            + len(priv).to_bytes(4, "big")
            + priv
        )
        return self.h20_util_armor("OPENSSH PRIVATE KEY", der, width=70)

    def h20_slack_webhook(self) -> str:
        return (
            f"https://hooks.slack.com/services/T{self.s(10, UPNUM)}/B{self.s(10, UPNUM)}/"
            f"{self.s(24, ALNUM)}"
        )

    def h20_teams_webhook(self) -> str:
        ids = [self.h20_util_uuid() for _ in range(3)]
        host = self.pick(["fadatlantica", "federacionatlantica", "fadtv"])
        return (
            f"https://{host}.webhook.office.com/webhookb2/{ids[0]}@{ids[1]}/IncomingWebhook/"
            f"{self.s(32, HEX)}/{ids[2]}/V2{self.s(43, URLSAFE)}"
        )

    def h20_telegram(self) -> str:
        return f"{self.rng.randrange(10**9, 8 * 10**9)}:AA{self.s(33, URLSAFE)}"

    def h20_whatsapp_token(self) -> str:
        return "EAA" + self.s(1, "BGIJ") + self.s(self.rng.randrange(180, 220), ALNUM)

    def h20_twilio(self) -> str:
        return self.s(32, HEX)

    def h20_sendgrid(self) -> str:
        return f"SG.{self.s(22, URLSAFE)}.{self.s(43, URLSAFE)}"

    def h20_datadog(self) -> str:
        return self.s(32, HEX)

    def h20_cloudflare(self) -> str:
        return self.s(40, URLSAFE)

    def h20_vault_token(self) -> str:
        if self.rng.randrange(2):
            return "hvs." + self.s(24, ALNUM)
        return "hvs.CAESI" + self.s(86, URLSAFE)

    def h20_aws_pair(self) -> str:
        key_id = "AKIA" + self.s(16, string.ascii_uppercase + "234567")
        secret = self.s(1, ALNUM) + self.s(39, ALNUM + "/+")
        return f"aws_access_key_id = {key_id}\naws_secret_access_key = {secret}"

    # ------------------------------------------------------------------ negatives: hashes
    def h20_bcrypt(self) -> str:
        return self.pick(["$2y$10$", "$2y$12$", "$2a$11$"]) + self.s(53, CRYPT64)

    def h20_pw_hash(self) -> str:
        shape = self.rng.randrange(4)
        if shape == 0:
            return self.h20_bcrypt()
        if shape == 1:
            salt = self.h20_util_b64(16).rstrip("=")
            digest = self.h20_util_b64(32).rstrip("=")
            return f"$argon2id$v=19$m=65536,t=4,p=1${salt}${digest}"
        if shape == 2:
            return f"$6${self.s(16, CRYPT64)}${self.s(86, CRYPT64)}"
        return self.h20_pbkdf2()

    def h20_pbkdf2(self) -> str:
        return f"pbkdf2_sha256$720000${self.s(22, ALNUM)}${self.h20_util_b64(32)}"

    def h20_oracle_hash(self) -> str:
        return f"S:{self.s(60, HEXU)};T:{self.s(160, HEXU)}"

    def h20_mssql_hash(self) -> str:
        return "0x0200" + self.s(136, HEXU)

    def h20_cisco_hash(self) -> str:
        cisco = "./" + string.digits + string.ascii_uppercase + string.ascii_lowercase
        shape = self.rng.randrange(3)
        if shape == 0:
            return f"9 $9${self.s(14, cisco)}${self.s(43, cisco)}"
        if shape == 1:
            return f"8 $8${self.s(14, cisco)}${self.s(43, cisco)}"
        return f"5 $1${self.s(4, cisco)}${self.s(22, cisco)}"

    def h20_apr1(self) -> str:
        return f"$apr1${self.s(8, CRYPT64)}${self.s(22, CRYPT64)}"

    # ------------------------------------------------------------------ negatives: encrypted
    def h20_laravel_enc(self) -> str:
        payload = {
            "iv": self.h20_util_b64(16),
            "value": self.h20_util_b64(self.rng.choice([32, 48, 64])),
            "mac": self.s(64, HEX),
            "tag": "",
        }
        return base64.b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode()

    def h20_rails_enc(self) -> str:
        return f"{self.h20_util_b64(180)}--{self.h20_util_b64(12)}--{self.h20_util_b64(16)}"

    def h20_ansible_vault(self) -> str:
        body = self.s(80 * 5 + 42, HEX)
        rows = [body[i : i + 80] for i in range(0, len(body), 80)]
        return "$ANSIBLE_VAULT;1.1;AES256\n" + "\n".join(rows)

    def h20_sops(self) -> str:
        data = self.h20_util_b64(self.rng.randrange(12, 40))
        iv = self.h20_util_b64(32)
        tag = self.h20_util_b64(16)
        return f"ENC[AES256_GCM,data:{data},iv:{iv},tag:{tag},type:str]"

    def h20_sealed(self) -> str:
        return "AgB" + self.h20_util_b64(self.rng.choice([360, 420, 540]))

    def h20_jasypt(self) -> str:
        return "ENC(" + self.h20_util_b64(self.rng.choice([32, 48])) + ")"

    def h20_dpapi(self) -> str:
        return (
            "01000000d08c9ddf0115d1118c7a00c04fc297eb01000000"
            + self.s(8, HEX)
            + "0000000002000000000003660000c000000010000000"
            + self.s(self.rng.choice([280, 344, 408]), HEX)
        )

    def h20_xml_cipher(self) -> str:
        return self.h20_util_b64(self.rng.choice([96, 144, 192]))

    def h20_encrypted_pem(self) -> str:
        der = self.rng.randbytes(1200)
        body = base64.b64encode(der).decode()
        rows = [body[i : i + 64] for i in range(0, len(body), 64)]
        iv = self.s(32, HEXU)
        return (
            "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n"
            f"DEK-Info: AES-256-CBC,{iv}\n\n" + "\n".join(rows) + "\n-----END RSA PRIVATE KEY-----"
        )

    # ------------------------------------------------------------------ negatives: references
    def h20_php_ref(self) -> str:
        return self.pick(
            [
                "env('DB_PASSWORD')",
                "env('STRIPE_SECRET')",
                "getenv('REDSYS_KEY')",
                "$_ENV['MAIL_PASSWORD']",
                "config('services.adyen.api_key')",
                "$_SERVER['QR_SIGNING_KEY']",
            ]
        )

    def h20_js_ref(self) -> str:
        return self.pick(
            [
                "process.env.STRIPE_SECRET_KEY",
                "process.env.MP_ACCESS_TOKEN ?? ''",
                "process.env['ADYEN_API_KEY']",
                "config.get<string>('payments.paypal.secret')",
                "await secrets.get('redsys-merchant-key')",
                "import.meta.env.VITE_PUBLIC_KEY",
            ]
        )

    def h20_py_ref(self) -> str:
        return self.pick(
            [
                'os.environ["DB_PASSWORD"]',
                'os.getenv("ADAMS_PASSWORD")',
                'env("DJANGO_SECRET_KEY")',
                'env.str("SMTP_PASSWORD")',
                "settings.STREAM_SIGNING_KEY",
                'keyring.get_password("fad", "odbc")',
                'client.get_secret("sql-antidopaje").value',
            ]
        )

    def h20_ruby_ref(self) -> str:
        return self.pick(
            [
                "<%= ENV['CLUBES_DATABASE_PASSWORD'] %>",
                "<%= ENV.fetch('DB_PASSWORD') %>",
                "<%= Rails.application.credentials.dig(:database, :password) %>",
                '<%= ENV.fetch("PGPASSWORD", nil) %>',
            ]
        )

    def h20_dart_ref(self) -> str:
        return self.pick(
            [
                "String.fromEnvironment('FAD_API_KEY')",
                "dotenv.env['API_KEY'] ?? ''",
                "Platform.environment['FAD_API_TOKEN']!",
                "const String.fromEnvironment('STREAM_TOKEN', defaultValue: '')",
                "await _storage.read(key: 'refresh_token')",
            ]
        )

    def h20_ps_ref(self) -> str:
        return self.pick(
            [
                "$env:SQL_SA_PASSWORD",
                "(Get-Secret -Name SqlBackup -AsPlainText)",
                "$Credential.GetNetworkCredential().Password",
                "(Read-Host -AsSecureString 'Contraseña')",
                "(Get-AzKeyVaultSecret -VaultName kv-fad-it -Name sql-sa -AsPlainText)",
            ]
        )

    def h20_sh_ref(self) -> str:
        return self.pick(
            [
                '"${DB_PASSWORD}"',
                '"$(cat /run/secrets/db_password)"',
                '"${ADMIN_PASSWORD:?falta ADMIN_PASSWORD}"',
                '"$(vault kv get -field=password secret/fad/backup)"',
                '"$(az keyvault secret show --vault-name kv-fad-it -n sftp-pass --query value -o tsv)"',
                '"$PGPASSWORD"',
            ]
        )

    def h20_ci_ref(self) -> str:
        return self.pick(
            [
                "$CI_REGISTRY_PASSWORD",
                "${CI_JOB_TOKEN}",
                "$SONAR_TOKEN",
                "${ARM_CLIENT_SECRET}",
                "$KUBE_CONFIG_PROD",
                "$GCP_SA_KEY_FILE",
            ]
        )

    def h20_helm_ref(self) -> str:
        return self.pick(
            [
                "{{ .Values.db.password | b64enc | quote }}",
                '{{ required "db.password" .Values.db.password | b64enc }}',
                '{{ include "taquilla.secretName" . }}',
                "{{ .Values.redis.auth.password | b64enc }}",
            ]
        )

    def h20_tf_ref(self) -> str:
        return self.pick(
            [
                "var.sql_admin_password",
                "random_password.sql.result",
                "azurerm_key_vault_secret.sql.value",
                "data.google_secret_manager_secret_version.db.secret_data",
                "var.arm_client_secret",
                'module.kv.secrets["wowza-admin"]',
            ]
        )

    def h20_ansible_ref(self) -> str:
        return self.pick(
            [
                "{{ vault_nvr_admin_password }}",
                "{{ lookup('env', 'SCADA_PASS') }}",
                "{{ lookup('community.hashi_vault.hashi_vault', 'secret=fad/data/estadio:nvr') }}",
                "{{ vault_radius_secret }}",
            ]
        )

    def h20_go_ref(self) -> str:
        return self.pick(
            [
                'os.Getenv("CDN_TOKEN_KEY")',
                "cfg.Akamai.Key",
                'viper.GetString("drm.signing_key")',
                'mustEnv("EDGE_AUTH_KEY")',
            ]
        )

    def h20_kv_ref(self) -> str:
        return self.pick(
            [
                "@Microsoft.KeyVault(SecretUri=https://kv-fad-antidopaje.vault.azure.net/secrets/sql-app/)",
                "@Microsoft.KeyVault(VaultName=kv-fad-antidopaje;SecretName=adams-password)",
                "${AZURE_SQL_PASSWORD}",
                "{KeyVault:sql-antidopaje}",
            ]
        )

    def h20_java_ref(self) -> str:
        return self.pick(
            [
                "${ARBITRAJE_DB_PASSWORD}",
                "${vault.arbitraje.db.password}",
                "${DB_PASS:}",
                "#{environment['ORACLE_PWD']}",
            ]
        )

    # ------------------------------------------------------------------ negatives: placeholders
    def h20_placeholder(self) -> str:
        return self.pick(
            [
                "CAMBIAR_ESTO",
                "<contraseña>",
                "<senha-aqui>",
                "à_renseigner",
                "changeme",
                "xxxxxxxxxxxxxxxx",
                "********",
                "REPLACE_ME",
                "<stream-key>",
                "TU_CLAVE_AQUI",
                "${SECRET}",
                "rellenar",
                "<YOUR_API_KEY>",
                "xxxx-xxxx-xxxx-xxxx-xxxx",
            ]
        )

    def h20_redacted(self) -> str:
        return self.pick(
            [
                "[REDACTED]",
                "[ELIMINADO]",
                "********",
                "(oculta)",
                "•••••••••",
                "[removido]",
                "<redacted>",
                "***borrada***",
                "[masqué]",
            ]
        )

    def h20_fake(self) -> str:
        return self.pick(
            [
                "fake-stream-key-do-not-use",
                "sk_test_FAKE_not_a_real_key_000000",
                "not-a-real-secret",
                "dummy-password-for-tests",
                "test_fake_token_1234567890",
                "FAKE-REDSYS-KEY-FOR-UNIT-TESTS",
                "clave-falsa-de-pruebas",
                "senha-falsa-teste",
                "whsec_test_fake_secret",
            ]
        )

    def h20_doc_pw(self) -> str:
        shape = self.rng.randrange(3)
        if shape == 0:
            return self.pick(["example", "s3cr3t", "hunter2", "Ejemplo123", "exemplo", "secret"])
        if shape == 1:
            return self.pick(self.words).capitalize() + self.s(3, DIGITS)
        return self.s(14, ALNUM)

    def h20_aws_example(self) -> str:
        return self.pick(
            [
                "aws_access_key_id = AKIAIOSFODNN7EXAMPLE\n"
                "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "aws_access_key_id = AKIAI44QH8DHBEXAMPLE\n"
                "aws_secret_access_key = je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY",
            ]
        )

    # ------------------------------------------------------------------ negatives: public material
    def h20_public_pem(self) -> str:
        if self.rng.randrange(2):
            der = bytes.fromhex("302a300506032b6570032100") + self.rng.randbytes(32)
        else:
            der = (
                bytes.fromhex("30820122300d06092a864886f70d01010105000382010f003082010a0282010100")
                + self.rng.randbytes(256)
                + bytes.fromhex("0203010001")
            )
        return self.h20_util_armor("PUBLIC KEY", der)

    def h20_cert(self) -> str:
        der = bytes.fromhex("308205a230820489a003020102021100") + self.rng.randbytes(1430)
        return self.h20_util_armor("CERTIFICATE", der)

    def h20_ssh_pub(self) -> str:
        blob = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + self.rng.randbytes(32)
        who = self.pick(["deploy@fad-ci", "it@fad-atlantica.org", "ansible@bastion-fad"])
        return f"ssh-ed25519 {base64.b64encode(blob).decode()} {who}"

    def h20_pk_public(self) -> str:
        shape = self.rng.randrange(3)
        if shape == 0:
            return "pk_live_" + self.s(self.rng.choice([24, 99]), ALNUM)
        if shape == 1:
            return "APP_USR-" + self.h20_util_uuid()
        return "live_" + self.s(32, UPNUM)

    # ------------------------------------------------------------------ negatives: identifiers
    def h20_kid(self) -> str:
        if self.rng.randrange(2):
            return self.h20_util_uuid()
        return self.s(32, HEX)

    def h20_uuid(self) -> str:
        return self.h20_util_uuid()

    def h20_digest(self) -> str:
        return hashlib.sha256(self.rng.randbytes(24)).hexdigest()

    def h20_git_sha(self) -> str:
        return self.s(40, HEX)

    def h20_sri(self) -> str:
        return "sha512-" + self.h20_util_b64(64)

    def h20_sample_id(self) -> str:
        shape = self.rng.randrange(3)
        if shape == 0:
            return f"A {self.s(7, DIGITS)}"
        if shape == 1:
            return f"FAD-AD-{self.rng.randrange(2022, 2026)}-{self.s(5, DIGITS)}"
        return self.s(12, UPNUM)

    def h20_ticket_id(self) -> str:
        shape = self.rng.randrange(3)
        if shape == 0:
            return f"TKT-{self.rng.randrange(2023, 2026)}-{self.s(7, DIGITS)}-{self.s(1, UPNUM)}"
        if shape == 1:
            return "ord_" + self.s(24, LOWNUM)
        return self.s(16, UPNUM)

    def h20_mac(self) -> str:
        return ":".join(self.s(2, HEXU) for _ in range(6))

    def h20_serial(self) -> str:
        return self.pick(["AG5", "SN", "AGX-", "ZK"]) + self.s(14, UPNUM)

    def h20_policy_num(self) -> str:
        return self.pick(["10", "12", "14", "16"])

    # ------------------------------------------------------------------ negatives: UI text
    def h20_i18n_es(self) -> str:
        return self.pick(
            [
                "La contraseña debe tener al menos 10 caracteres",
                "Contraseña incorrecta. Inténtalo de nuevo.",
                "¿Has olvidado tu contraseña?",
                "Las contraseñas no coinciden",
                "Introduce tu clave de acceso",
                "Tu sesión ha caducado, vuelve a iniciar sesión",
                "Restablecer contraseña",
            ]
        )

    def h20_i18n_pt(self) -> str:
        return self.pick(
            [
                "Esqueceu a senha?",
                "A senha deve ter pelo menos 10 caracteres",
                "Senha incorreta, tente novamente",
                "As senhas não coincidem",
                "Digite sua senha",
                "Redefinir senha",
            ]
        )

    def h20_i18n_fr(self) -> str:
        return self.pick(
            [
                "Mot de passe oublié ?",
                "Le mot de passe est trop court",
                "Mot de passe incorrect",
                "Les mots de passe ne correspondent pas",
                "Saisissez votre mot de passe",
                "Réinitialiser le mot de passe",
            ]
        )

    def h20_i18n_en(self) -> str:
        return self.pick(
            [
                "Forgot your password?",
                "Password must be at least 10 characters",
                "Incorrect password, please try again",
                "Passwords do not match",
                "Enter your stream key",
                "Your session has expired",
            ]
        )


VALUES = Heldout20Values


def _t(path: str, text: str, kind: str, positive: bool) -> evalset.Template:
    return (path, textwrap.dedent(text).lstrip("\n"), kind, positive)


TEMPLATES: list[evalset.Template] = []

# ---------------------------------------------------------------------- ticketing: Laravel / PHP
TEMPLATES += [
    _t(
        "taquilla-web/.env",
        """
        APP_NAME="FAD Taquilla"
        APP_ENV=production
        APP_DEBUG=false
        APP_URL=https://entradas.fad-atlantica.org
        APP_LOCALE=es
        APP_FALLBACK_LOCALE=en

        LOG_CHANNEL=stack
        LOG_LEVEL=warning

        DB_CONNECTION=mysql
        DB_HOST=mysql-taquilla.fad.internal
        DB_PORT=3306
        DB_DATABASE=taquilla
        DB_USERNAME=taquilla_app
        DB_PASSWORD="{V}"

        REDIS_HOST=redis-taquilla.fad.internal
        REDIS_PASSWORD="{V2}"
        REDIS_PORT=6379

        MAIL_MAILER=smtp
        MAIL_HOST=smtp.office365.com
        MAIL_PORT=587
        MAIL_USERNAME=entradas@fad-atlantica.org
        MAIL_PASSWORD="{V3}"
        MAIL_ENCRYPTION=tls
        MAIL_FROM_ADDRESS="entradas@fad-atlantica.org"
        MAIL_FROM_NAME="${APP_NAME}"

        QUEUE_CONNECTION=redis
        SESSION_DRIVER=redis
        SESSION_LIFETIME=120
        """,
        "h20_pw",
        True,
    ),
    _t(
        "taquilla-web/.env.production",
        """
        # Generado con `php artisan key:generate --show` el 2024-07-02 (temporada 24/25)
        APP_KEY={V}
        # clave anterior, se mantiene para descifrar cookies antiguas hasta el cierre de abonos
        APP_PREVIOUS_KEYS={V2}
        APP_ENV=production
        APP_DEBUG=false
        TICKET_QR_ISSUER=fad-taquilla
        """,
        "h20_app_key",
        True,
    ),
    _t(
        "taquilla-web/.env.example",
        """
        APP_NAME="FAD Taquilla"
        APP_ENV=local
        APP_KEY=
        APP_DEBUG=true
        APP_URL=http://taquilla.test

        DB_CONNECTION=mysql
        DB_HOST=127.0.0.1
        DB_PORT=3306
        DB_DATABASE=taquilla
        DB_USERNAME=taquilla
        DB_PASSWORD={V}

        REDIS_PASSWORD={V2}

        STRIPE_KEY=
        STRIPE_SECRET={V3}
        REDSYS_MERCHANT_CODE=999008881
        REDSYS_KEY={V4}
        """,
        "h20_placeholder",
        False,
    ),
    _t(
        "taquilla-web/config/services.php",
        """
        <?php

        return [

            'postmark' => [
                'token' => env('POSTMARK_TOKEN'),
            ],

            'stripe' => [
                'key' => env('STRIPE_KEY'),
                // TODO(javi): quitar el valor por defecto cuando el pipeline inyecte STRIPE_SECRET
                'secret' => env('STRIPE_SECRET', '{V}'),
                'webhook' => [
                    'tolerance' => env('STRIPE_WEBHOOK_TOLERANCE', 300),
                ],
            ],

            'stripe_abonos' => [
                'secret' => env('STRIPE_ABONOS_SECRET', '{V2}'),
                'currency' => 'eur',
            ],

        ];
        """,
        "h20_stripe",
        True,
    ),
    _t(
        "taquilla-web/config/database.php",
        """
        <?php

        use Illuminate\\Support\\Str;

        return [
            'default' => env('DB_CONNECTION', 'mysql'),

            'connections' => [
                'mysql' => [
                    'driver' => 'mysql',
                    'url' => env('DB_URL'),
                    'host' => env('DB_HOST', '127.0.0.1'),
                    'port' => env('DB_PORT', '3306'),
                    'database' => env('DB_DATABASE', 'taquilla'),
                    'username' => env('DB_USERNAME', 'taquilla'),
                    'password' => {V},
                    'charset' => 'utf8mb4',
                    'collation' => 'utf8mb4_unicode_ci',
                    'prefix' => '',
                    'strict' => true,
                ],

                'aforo' => [
                    'driver' => 'sqlsrv',
                    'host' => env('AFORO_DB_HOST', 'sql-estadios.fad.internal'),
                    'database' => 'Aforo',
                    'username' => env('AFORO_DB_USERNAME', 'taquilla_ro'),
                    'password' => {V2},
                    'encrypt' => 'yes',
                ],
            ],

            'redis' => [
                'client' => env('REDIS_CLIENT', 'phpredis'),
                'default' => [
                    'host' => env('REDIS_HOST', '127.0.0.1'),
                    'password' => {V3},
                    'port' => env('REDIS_PORT', '6379'),
                    'database' => env('REDIS_DB', '0'),
                    'prefix' => Str::slug(env('APP_NAME', 'taquilla'), '_').'_',
                ],
            ],
        ];
        """,
        "h20_php_ref",
        False,
    ),
    _t(
        "taquilla-web/config/redsys.php",
        """
        <?php

        // Pasarela Redsys (TPV Virtual) - entradas y abonos
        // Comercio de producción dado de alta por Caja Atlántica, terminal 001 = web, 002 = app
        return [
            'url' => 'https://sis.redsys.es/sis/realizarPago',
            'url_rest' => 'https://sis.redsys.es/sis/rest/trataPeticionREST',
            'merchant_code' => '348117902',
            'terminal' => '001',
            'currency' => '978',
            'transaction_type' => '0',
            'key' => '{V}',
            'terminals' => [
                '002' => ['key' => '{V2}'],
            ],
            'merchant_url' => 'https://entradas.fad-atlantica.org/redsys/notificacion',
            'signature_version' => 'HMAC_SHA256_V1',
        ];
        """,
        "h20_redsys",
        True,
    ),
    _t(
        "taquilla-web/app/Services/Tickets/QrTicketSigner.php",
        """
        <?php

        namespace App\\Services\\Tickets;

        use App\\Models\\Ticket;
        use Carbon\\CarbonImmutable;

        /**
         * Firma los códigos QR de las entradas (Ed25519). Los tornos validan offline con la
         * clave pública que se publica en /api/v1/qr/public-key.
         */
        final class QrTicketSigner
        {
            // FIXME: mover a Key Vault antes de la final de Copa (ticket OPS-2291)
            private const SIGNING_KEY_PEM = <<<PEM
        {V}
        PEM;

            public function sign(Ticket $ticket): string
            {
                $payload = implode('|', [
                    'FAD1',
                    $ticket->uuid,
                    $ticket->event_id,
                    $ticket->gate,
                    CarbonImmutable::now()->getTimestamp(),
                ]);
                $key = openssl_pkey_get_private(self::SIGNING_KEY_PEM);
                openssl_sign($payload, $signature, $key, 0);

                return rtrim(strtr(base64_encode($payload.'.'.$signature), '+/', '-_'), '=');
            }
        }
        """,
        "h20_qr_key",
        True,
    ),
    _t(
        "taquilla-web/database/seeders/StaffUserSeeder.php",
        """
        <?php

        namespace Database\\Seeders;

        use Illuminate\\Database\\Seeder;
        use Illuminate\\Support\\Facades\\DB;

        // Usuarios de taquilla física exportados de producción (hashes, no contraseñas)
        class StaffUserSeeder extends Seeder
        {
            public function run(): void
            {
                DB::table('users')->insert([
                    ['name' => 'Taquilla Puerta 3', 'email' => 'puerta3@fad-atlantica.org', 'password' => '{V}', 'role' => 'box_office'],
                    ['name' => 'Taquilla Puerta 7', 'email' => 'puerta7@fad-atlantica.org', 'password' => '{V2}', 'role' => 'box_office'],
                    ['name' => 'Supervisión', 'email' => 'supervision.taquilla@fad-atlantica.org', 'password' => '{V3}', 'role' => 'supervisor'],
                ]);
            }
        }
        """,
        "h20_bcrypt",
        False,
    ),
    _t(
        "taquilla-web/storage/app/settings/gateway_overrides.json",
        """
        {
          "updated_at": "2024-10-03T18:22:41+02:00",
          "updated_by": "m.quintela",
          "redsys_key_terminal_002": "{V}",
          "adyen_api_key": "{V2}",
          "note": "Valores cifrados con Crypt::encryptString (APP_KEY de producción)"
        }
        """,
        "h20_laravel_enc",
        False,
    ),
    _t(
        "taquilla-web/tests/Feature/CheckoutRedsysTest.php",
        """
        <?php

        namespace Tests\\Feature;

        use Tests\\TestCase;

        class CheckoutRedsysTest extends TestCase
        {
            protected function setUp(): void
            {
                parent::setUp();
                config([
                    'redsys.key' => '{V}',
                    'services.stripe.secret' => '{V2}',
                ]);
            }

            public function test_signature_rejects_tampered_amount(): void
            {
                $response = $this->post('/redsys/notificacion', [
                    'Ds_SignatureVersion' => 'HMAC_SHA256_V1',
                    'Ds_MerchantParameters' => base64_encode(json_encode(['Ds_Amount' => '1'])),
                    'Ds_Signature' => 'invalid',
                ]);

                $response->assertStatus(400);
            }
        }
        """,
        "h20_fake",
        False,
    ),
    _t(
        "taquilla-web/lang/es/auth.php",
        """
        <?php

        return [
            'failed' => '{V}',
            'password' => '{V2}',
            'throttle' => 'Demasiados intentos de acceso. Inténtalo de nuevo en :seconds segundos.',
            'reset_link' => '{V3}',
        ];
        """,
        "h20_i18n_es",
        False,
    ),
    _t(
        "taquilla-web/composer.lock",
        """
        {
            "_readme": [
                "This file locks the dependencies of your project to a known state",
                "This file is @generated automatically"
            ],
            "content-hash": "{V}",
            "packages": [
                {
                    "name": "stripe/stripe-php",
                    "version": "v13.18.0",
                    "source": {
                        "type": "git",
                        "url": "https://github.com/stripe/stripe-php.git",
                        "reference": "{V2}"
                    },
                    "dist": {
                        "type": "zip",
                        "url": "https://api.github.com/repos/stripe/stripe-php/zipball/{V2}",
                        "reference": "{V2}",
                        "shasum": ""
                    },
                    "require": {
                        "php": ">=5.6.0"
                    },
                    "type": "library"
                },
                {
                    "name": "sermepa/sermepa",
                    "version": "1.4.2",
                    "source": {
                        "type": "git",
                        "url": "https://github.com/ssheduardo/sermepa.git",
                        "reference": "{V3}"
                    },
                    "type": "library"
                }
            ]
        }
        """,
        "h20_git_sha",
        False,
    ),
    _t(
        "taquilla-web/auth.json",
        """
        {
            "github-oauth": {
                "github.com": "{V}"
            }
        }
        """,
        "h20_github",
        True,
    ),
    _t(
        "taquilla-web/app/Mail/Transport/sendgrid.php",
        """
        <?php

        // Transporte SendGrid para confirmaciones de compra (usado por la cola `mails-entradas`)
        return [
            'transport' => 'sendgrid',
            'api_key' => '{V}',
            'from' => ['address' => 'no-reply@entradas.fad-atlantica.org', 'name' => 'FAD Entradas'],
            'categories' => ['entradas', 'confirmacion'],
        ];
        """,
        "h20_sendgrid",
        True,
    ),
]

# ---------------------------------------------------------------------- ticketing: Node gateway
TEMPLATES += [
    _t(
        "ticket-gateway/.env",
        """
        NODE_ENV=production
        PORT=8080
        LOG_LEVEL=info

        # Mercado Pago (venta en Brasil / Uruguay - gira de la selección)
        MP_ACCESS_TOKEN={V}
        MP_WEBHOOK_PATH=/webhooks/mercadopago
        MP_ACCESS_TOKEN_UY={V2}

        PG_HOST=pg-gateway.fad.internal
        PG_DATABASE=gateway
        """,
        "h20_mercadopago",
        True,
    ),
    _t(
        "ticket-gateway/src/config/payments.ts",
        """
        import config from 'config';
        import { secrets } from '../lib/secrets';

        export interface PaymentsConfig {
          stripe: { secretKey: string; webhookSecret: string };
          mercadopago: { accessToken: string };
          adyen: { apiKey: string; merchantAccount: string };
        }

        export async function loadPaymentsConfig(): Promise<PaymentsConfig> {
          return {
            stripe: {
              secretKey: {V},
              webhookSecret: {V2},
            },
            mercadopago: {
              accessToken: {V3},
            },
            adyen: {
              apiKey: {V4},
              merchantAccount: 'FederacionAtlanticaECOM',
            },
          };
        }
        """,
        "h20_js_ref",
        False,
    ),
    _t(
        "ticket-gateway/src/adyen/client.ts",
        """
        import { Client, CheckoutAPI } from '@adyen/api-library';

        // Terminales de taquilla (Adyen POS) + pagos online de la app
        const client = new Client({
          apiKey: '{V}',
          environment: 'LIVE',
          liveEndpointUrlPrefix: '1797a841fbb37ca7-FederacionAtlantica',
        });

        export const checkout = new CheckoutAPI(client);

        export const MERCHANT_ACCOUNT = 'FederacionAtlanticaECOM';
        """,
        "h20_adyen",
        True,
    ),
    _t(
        "ticket-gateway/src/paypal/index.js",
        """
        'use strict';

        const paypal = require('@paypal/checkout-server-sdk');

        const CLIENT_ID = 'AbQ3xk9P2-FadAtlanticaTicketingLiveClient';
        const CLIENT_SECRET = '{V}';

        function client() {
          const env = new paypal.core.LiveEnvironment(CLIENT_ID, CLIENT_SECRET);
          return new paypal.core.PayPalHttpClient(env);
        }

        module.exports = { client };
        """,
        "h20_paypal",
        True,
    ),
    _t(
        "ticket-gateway/config/production.json",
        """
        {
          "server": { "port": 8080, "trustProxy": true },
          "auth": {
            "issuer": "https://auth.fad-atlantica.org",
            "jwtSecret": "{V}",
            "refreshSecret": "{V2}",
            "accessTokenTtl": "15m"
          },
          "payments": { "defaultCurrency": "EUR" }
        }
        """,
        "h20_jwt_secret",
        True,
    ),
    _t(
        "ticket-gateway/.npmrc",
        """
        @fad:registry=https://gitlab.fad-atlantica.org/api/v4/packages/npm/
        //registry.npmjs.org/:_authToken={V}
        engine-strict=true
        save-exact=true
        """,
        "h20_npm",
        True,
    ),
    _t(
        "ticket-gateway/package-lock.json",
        """
        {
          "name": "@fad/ticket-gateway",
          "version": "3.8.1",
          "lockfileVersion": 3,
          "requires": true,
          "packages": {
            "node_modules/@adyen/api-library": {
              "version": "17.3.0",
              "resolved": "https://registry.npmjs.org/@adyen/api-library/-/api-library-17.3.0.tgz",
              "integrity": "{V}"
            },
            "node_modules/mercadopago": {
              "version": "2.0.11",
              "resolved": "https://registry.npmjs.org/mercadopago/-/mercadopago-2.0.11.tgz",
              "integrity": "{V2}"
            },
            "node_modules/stripe": {
              "version": "14.25.0",
              "resolved": "https://registry.npmjs.org/stripe/-/stripe-14.25.0.tgz",
              "integrity": "{V3}"
            }
          }
        }
        """,
        "h20_sri",
        False,
    ),
    _t(
        "ticket-gateway/src/qr/verify.ts",
        """
        import { createPublicKey, verify } from 'node:crypto';

        // Clave pública de firma de entradas (la privada vive sólo en taquilla-web / Key Vault)
        const QR_PUBLIC_KEY = createPublicKey(`{V}`);

        export function verifyTicket(token: string): boolean {
          const raw = Buffer.from(token, 'base64url');
          const dot = raw.lastIndexOf('.');
          const payload = raw.subarray(0, dot);
          const signature = raw.subarray(dot + 1);
          return verify(null, payload, QR_PUBLIC_KEY, signature);
        }
        """,
        "h20_public_pem",
        False,
    ),
    _t(
        "ticket-gateway/docker-compose.yml",
        """
        services:
          gateway:
            build: .
            env_file: .env
            ports:
              - "8080:8080"
            depends_on:
              - postgres
              - redis

          postgres:
            image: postgres:16-alpine
            environment:
              POSTGRES_USER: gateway
              POSTGRES_PASSWORD: "{V}"
              POSTGRES_DB: gateway
            volumes:
              - pgdata:/var/lib/postgresql/data

          redis:
            image: redis:7-alpine
            command: ["redis-server", "--requirepass", "{V2}"]

          pgadmin:
            image: dpage/pgadmin4:8
            environment:
              PGADMIN_DEFAULT_EMAIL: it@fad-atlantica.org
              PGADMIN_DEFAULT_PASSWORD: "{V3}"

        volumes:
          pgdata:
        """,
        "h20_pw",
        True,
    ),
    _t(
        "ticket-gateway/README.md",
        """
        # ticket-gateway

        Pasarela de pagos de FAD Entradas (Stripe, Redsys, Adyen, Mercado Pago, PayPal).

        ## Desarrollo local

        ```bash
        cp .env.example .env
        docker compose up -d postgres redis
        export DATABASE_URL=postgres://gateway:{V}@db.example.com:5432/gateway
        npm ci && npm run dev
        ```

        Para probar el panel de administración usa el usuario de ejemplo
        `admin@example.com` / `{V2}` (sólo existe en el seed de desarrollo).

        Redis de la documentación: `redis://:{V3}@cache.example.org:6379/0`
        """,
        "h20_doc_pw",
        False,
    ),
    _t(
        "ticket-gateway/src/webhooks/stripe.ts",
        """
        import Stripe from 'stripe';
        import type { Request, Response } from 'express';

        const stripe = new Stripe(process.env.STRIPE_SECRET_KEY!, { apiVersion: '2024-04-10' });

        // secreto del endpoint https://pagos.fad-atlantica.org/webhooks/stripe (dashboard > Webhooks)
        const endpointSecret = '{V}';

        export function stripeWebhook(req: Request, res: Response) {
          const sig = req.headers['stripe-signature'] as string;
          let event: Stripe.Event;
          try {
            event = stripe.webhooks.constructEvent(req.body, sig, endpointSecret);
          } catch (err) {
            res.status(400).send(`Webhook Error: ${(err as Error).message}`);
            return;
          }
          res.json({ received: true, type: event.type });
        }
        """,
        "h20_whsec",
        True,
    ),
    _t(
        "ticket-gateway/src/i18n/pt-BR.json",
        """
        {
          "checkout.title": "Finalizar compra",
          "login.password.label": "Senha",
          "login.password.forgot": "{V}",
          "login.password.invalid": "{V2}",
          "signup.password.rules": "{V3}",
          "tickets.qr.show": "Mostrar QR no portão"
        }
        """,
        "h20_i18n_pt",
        False,
    ),
    _t(
        "ticket-gateway/scripts/smoke.sh",
        """
        #!/usr/bin/env bash
        # Smoke test tras cada despliegue de la pasarela (lo lanza el job deploy:prod)
        set -euo pipefail

        BASE=${BASE:-https://pagos.fad-atlantica.org}

        curl -fsS "$BASE/healthz"
        curl -fsS -H "Authorization: Basic {V}" "$BASE/admin/api/transactions?limit=1" >/dev/null
        echo "OK $(date -Is)"
        """,
        "h20_basic",
        True,
    ),
    _t(
        "ticket-gateway/src/config/public.ts",
        """
        // Claves públicas para el front (se pueden publicar, van al bundle del navegador)
        export const PUBLIC_KEYS = {
          stripePublishableKey: '{V}',
          mercadoPagoPublicKey: '{V2}',
          adyenClientKey: '{V3}',
        } as const;
        """,
        "h20_pk_public",
        False,
    ),
    _t(
        "ticket-gateway/src/db/orders.sql",
        """
        -- pedidos de prueba para reproducir INC-4471 (cobro duplicado en la final de Copa)
        INSERT INTO orders (id, ticket_ref, status, amount_cents, currency) VALUES
          ('{V}', '{V2}', 'paid', 4500, 'EUR'),
          ('{V3}', '{V4}', 'refunded', 4500, 'EUR');
        """,
        "h20_ticket_id",
        False,
    ),
]

# ---------------------------------------------------------------------- streaming: FAD TV
TEMPLATES += [
    _t(
        "streaming/obs/basic/profiles/FAD_Liga1/service.json",
        """
        {
            "settings": {
                "bwtest": false,
                "key": "{V}",
                "server": "rtmp://a.rtmp.youtube.com/live2",
                "service": "YouTube - RTMPS",
                "use_auth": false
            },
            "type": "rtmp_common"
        }
        """,
        "h20_yt_key",
        True,
    ),
    _t(
        "streaming/wowza/conf/publish.password",
        """
        # Publish password file (format [username][space][password])
        # Encoders de los estadios (Teradek / vMix). Rotar al inicio de cada temporada.
        # username password
        estadio_norte {V}
        estadio_sur {V2}
        pabellon_central {V3}
        """,
        "h20_pw",
        True,
    ),
    _t(
        "streaming/wowza/conf/admin.password",
        """
        # Admin password file (format [username][space][password][space][group|group])
        # username password group|group
        admin {V} admin|advUser
        operador {V2} basic
        """,
        "h20_weak_pw",
        True,
    ),
    _t(
        "streaming/wowza/conf/live/Application.xml",
        """
        <?xml version="1.0" encoding="UTF-8"?>
        <Root version="1">
            <Application>
                <Name>live</Name>
                <AppType>Live</AppType>
                <Streams>
                    <StreamType>live</StreamType>
                    <LiveStreamPacketizers>cupertinostreamingpacketizer, mpegdashstreamingpacketizer</LiveStreamPacketizers>
                </Streams>
                <Modules>
                    <Module>
                        <Name>ModuleSecureToken</Name>
                        <Class>com.wowza.wms.security.ModuleSecureToken</Class>
                    </Module>
                </Modules>
                <Properties>
                    <Property>
                        <Name>secureTokenVersion</Name>
                        <Value>2</Value>
                        <Type>Integer</Type>
                    </Property>
                    <Property>
                        <Name>secureTokenSharedSecret</Name>
                        <Value>{V}</Value>
                        <Type>String</Type>
                    </Property>
                    <Property>
                        <Name>secureTokenHashAlgorithm</Name>
                        <Value>SHA-256</Value>
                    </Property>
                    <Property>
                        <Name>secureTokenQueryParametersPrefix</Name>
                        <Value>fadtv</Value>
                    </Property>
                </Properties>
            </Application>
        </Root>
        """,
        "h20_shared_secret",
        True,
    ),
    _t(
        "streaming/srt/sls.conf",
        """
        srt {
            worker_threads 2;
            worker_connections 300;
            log_file /var/log/sls/srt.log;
            log_level info;

            server {
                listen 9000;
                latency 200;
                domain_player play.tv.fad-atlantica.org;
                domain_publisher ingest.tv.fad-atlantica.org;
                backlog 100;
                idle_streams_timeout 15;

                app {
                    app_player live;
                    app_publisher cam;
                    # cifrado AES-128 para los encoders de estadio
                    passphrase {V};
                    pbkeylen 16;
                }
            }
        }
        """,
        "h20_srt_pass",
        True,
    ),
    _t(
        "streaming/ffmpeg/push_multi.sh",
        """
        #!/usr/bin/env bash
        # Reemite la señal del programa a YouTube (ingesta principal + respaldo) y al canal de
        # FAD TV Femenino durante las jornadas dobles
        set -euo pipefail
        SRC="srt://127.0.0.1:9000?streamid=play/live/programa"

        ffmpeg -hide_banner -re -i "$SRC" \\
          -c:v libx264 -preset veryfast -b:v 6000k -maxrate 6000k -bufsize 12000k -g 50 \\
          -c:a aac -b:a 160k -ar 48000 -f tee -map 0:v -map 0:a \\
          "[f=flv:onfail=ignore]rtmp://a.rtmp.youtube.com/live2/{V}|\\
        [f=flv:onfail=ignore]rtmp://b.rtmp.youtube.com/live2?backup=1/{V}|\\
        [f=flv:onfail=ignore]rtmp://a.rtmp.youtube.com/live2/{V2}"
        """,
        "h20_yt_key",
        True,
    ),
    _t(
        "streaming/nginx-rtmp/nginx.conf",
        """
        worker_processes auto;
        events { worker_connections 1024; }

        rtmp {
            server {
                listen 1935;
                chunk_size 4096;

                application cam {
                    live on;
                    record off;
                    on_publish http://127.0.0.1:8081/auth/publish;
                    push rtmp://wowza-origin.fad.internal/live;
                }
            }
        }

        http {
            server {
                listen 8081;
                location /hls/ {
                    secure_link $arg_md5,$arg_expires;
                    secure_link_md5 "$secure_link_expires$uri$remote_addr {V}";
                    if ($secure_link = "") { return 403; }
                    if ($secure_link = "0") { return 410; }
                    root /var/www;
                }
            }
        }
        """,
        "h20_shared_secret",
        True,
    ),
    _t(
        "streaming/cdn/akamai_token.py",
        '''
        """Genera URLs firmadas (EdgeAuth / Token Auth 2.0) para el HLS de FAD TV en Akamai."""

        import time

        from akamai.edgeauth import EdgeAuth

        # property: fadtv-hls.akamaized.net -> Token Authentication -> "fadtv_token"
        ENCRYPTION_KEY = "{V}"
        # clave de respaldo (transition key) configurada en la misma property
        TRANSITION_KEY = "{V2}"


        def signed_url(path: str, ttl: int = 6 * 3600) -> str:
            auth = EdgeAuth(key=ENCRYPTION_KEY, window_seconds=ttl, token_name="hdnts", escape_early=True)
            token = auth.generate_acl_token("/hls/*", start_time=int(time.time()))
            return f"https://fadtv-hls.akamaized.net{path}?hdnts={token}"
        ''',
        "h20_hex_key",
        True,
    ),
    _t(
        "streaming/cdn/cloudfront_signer.py",
        '''
        """Firma URLs de CloudFront para los VOD de archivo (temporadas 2015-2020)."""

        import datetime

        from botocore.signers import CloudFrontSigner
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import padding

        KEY_PAIR_ID = "K2JCJMDEHXQW5F"

        PRIVATE_KEY = b"""{V}
        """


        def _rsa_signer(message: bytes) -> bytes:
            key = serialization.load_pem_private_key(PRIVATE_KEY, password=None)
            return key.sign(message, padding.PKCS1v15(), hashes.SHA1())


        signer = CloudFrontSigner(KEY_PAIR_ID, _rsa_signer)


        def sign(url: str, hours: int = 12) -> str:
            expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=hours)
            return signer.generate_presigned_url(url, date_less_than=expires)
        ''',
        "h20_rsa_pem",
        True,
    ),
    _t(
        "streaming/drm/widevine.yaml",
        """
        # Widevine Cloud License proxy (proveedor: fad_atlantica)
        widevine:
          provider: fad_atlantica
          license_server: https://license.widevine.com/cenc/getlicense/fad_atlantica
          signing_key: "{V}"
          signing_iv: "{V2}"
          policy:
            can_persist: false
            rental_duration_seconds: 0
            license_duration_seconds: 21600
        """,
        "h20_hex_key",
        True,
    ),
    _t(
        "streaming/drm/content_keys_index.csv",
        """
        asset_id,competition,matchday,kid_video,kid_audio,packaged_at
        LIGA1-2425-J07-RCA-UDN,liga1,7,{V},{V2},2024-10-05T21:14:02Z
        LIGA1-2425-J07-CDP-ATL,liga1,7,{V3},{V4},2024-10-06T19:02:55Z
        """,
        "h20_kid",
        False,
    ),
    _t(
        "streaming/drm/playready/keyseed.conf",
        """
        # PlayReady key seed del servidor de licencias (KeyGen con KID -> CK)
        # NO rotar sin re-empaquetar el archivo de la temporada actual
        [playready]
        license_url = https://drm.tv.fad-atlantica.org/playready/rightsmanager.asmx
        key_seed = {V}
        """,
        "h20_drm_seed",
        True,
    ),
    _t(
        "streaming/drm/README.md",
        """
        # DRM de FAD TV

        El empaquetador (Shaka Packager) obtiene las claves del servidor de licencias. Para
        pruebas locales usa claves "raw" y **nunca** las de producción:

        ```bash
        packager in=partido.mp4,stream=video,output=v.mp4 \\
          --enable_raw_key_encryption \\
          --keys label=:key_id={V}:key={V2} \\
          --protection_scheme cbcs
        ```

        La key seed de PlayReady se configura en `playready/keyseed.conf` como `key_seed = {V3}`.
        """,
        "h20_placeholder",
        False,
    ),
    _t(
        "streaming/helm/wowza/values.yaml",
        """
        image:
          repository: registry.gitlab.fad-atlantica.org/fadtv/wowza-engine
          tag: "4.8.27"

        admin:
          username: admin
          existingSecret: wowza-admin
          passwordKey: password

        license:
          existingSecret: wowza-license

        env:
          - name: WSE_MGR_USER
            value: admin
          - name: WSE_MGR_PASS
            valueFrom:
              secretKeyRef:
                name: wowza-admin
                key: password

        podAnnotations:
          checksum/secret: "{V}"
        """,
        "h20_digest",
        False,
    ),
    _t(
        "streaming/helm/wowza/values-prod.yaml",
        """
        replicaCount: 2

        admin:
          username: admin
          password: "{V}"

        publish:
          users:
            - name: estadio_norte
              password: "{V2}"
            - name: unidad_movil_2
              password: "{V3}"

        ingress:
          enabled: true
          hosts:
            - ingest.tv.fad-atlantica.org
        """,
        "h20_pw",
        True,
    ),
    _t(
        "streaming/vod/mux_upload.js",
        """
        // Sube los resúmenes de la jornada a Mux (canal "FAD TV Resúmenes")
        const Mux = require('@mux/mux-node');

        const mux = new Mux({
          tokenId: '3f6e9a1c-52b0-4e0f-a7b5-0c2d8e91f4aa',
          tokenSecret: '{V}',
        });

        async function createUpload(title) {
          return mux.video.uploads.create({
            cors_origin: 'https://tv.fad-atlantica.org',
            new_asset_settings: { playback_policy: ['signed'], passthrough: title },
          });
        }

        module.exports = { createUpload };
        """,
        "h20_mux_secret",
        True,
    ),
    _t(
        "streaming/obs/basic/scenes/FAD_Liga1.json",
        """
        {
            "current_scene": "Programa",
            "name": "FAD_Liga1",
            "sources": [
                {
                    "name": "Cámara principal",
                    "uuid": "{V}",
                    "id": "ffmpeg_source",
                    "settings": {"input": "srt://10.60.0.21:9001?mode=caller", "is_local_file": false}
                },
                {
                    "name": "Marcador",
                    "uuid": "{V2}",
                    "id": "browser_source",
                    "settings": {"url": "https://graficos.tv.fad-atlantica.org/marcador?partido=live"}
                },
                {
                    "name": "Programa",
                    "uuid": "{V3}",
                    "id": "scene"
                }
            ]
        }
        """,
        "h20_uuid",
        False,
    ),
    _t(
        "streaming/restreamer/.env",
        """
        # Restreamer (datarhei) - canales de Twitch de la retransmisión de la selección
        RS_USERNAME=fadtv
        TWITCH_INGEST=rtmp://mad.contribute.live-video.net/app
        TWITCH_KEY_FADTV_OFICIAL={V}
        TWITCH_KEY_FADTV_FEMENINO={V2}
        TWITCH_KEY_FADTV_FUTSAL={V3}
        """,
        "h20_twitch_key",
        True,
    ),
    _t(
        "streaming/monitoring/stream_health.py",
        """
        import os

        import requests

        WOWZA_API = "http://wowza-origin.fad.internal:8087/v2/servers/_defaultServer_"
        AUTH = (os.environ.get("WOWZA_USER", "admin"), {V})
        TELEGRAM_TOKEN = {V2}


        def incoming_streams() -> list[str]:
            url = f"{WOWZA_API}/vhosts/_defaultVHost_/applications/live/instances/_definst_"
            r = requests.get(url, auth=AUTH, headers={"Accept": "application/json"}, timeout=5)
            r.raise_for_status()
            return [s["name"] for s in r.json().get("incomingStreams", [])]
        """,
        "h20_py_ref",
        False,
    ),
    _t(
        "streaming/docs/runbook_ingesta.md",
        """
        # Runbook: ingesta SRT desde estadio

        1. Encender el Teradek / encoder de la unidad móvil y comprobar señal SDI.
        2. Configurar el destino SRT (modo *caller*):

           ```
           srt://ingest.tv.fad-atlantica.org:9000?streamid=cam/live/estadio_norte&passphrase={V}&pbkeylen=16&latency=200000
           ```

        3. Si el partido es de Copa usar el ingest de respaldo con su propia passphrase:
           `srt://ingest-b.tv.fad-atlantica.org:9000?streamid=cam/live/copa&passphrase={V2}`
        4. Avisar por el grupo de WhatsApp "FAD TV Realización" cuando haya imagen.
        """,
        "h20_srt_pass",
        True,
    ),
    _t(
        "streaming/tests/test_signer.py",
        """
        from streaming.cdn.akamai_token import signed_url


        def test_signed_url_contains_token(monkeypatch):
            monkeypatch.setattr("streaming.cdn.akamai_token.ENCRYPTION_KEY", "{V}")
            url = signed_url("/hls/liga1/master.m3u8")
            assert "hdnts=" in url


        def test_stream_key_not_logged(caplog):
            key = "{V2}"
            assert key not in caplog.text
        """,
        "h20_fake",
        False,
    ),
    _t(
        "streaming/cdn/tokenauth/main.go",
        """
        package main

        import (
        	"log"
        	"net/http"
        	"os"
        	"time"
        )

        type Config struct {
        	Key      string
        	Fallback string
        	Window   time.Duration
        }

        func main() {
        	cfg := Config{
        		Key:      {V},
        		Fallback: {V2},
        		Window:   6 * time.Hour,
        	}
        	if cfg.Key == "" {
        		log.Fatal("CDN token key vacío")
        	}
        	http.HandleFunc("/sign", signHandler(cfg))
        	log.Fatal(http.ListenAndServe(":"+os.Getenv("PORT"), nil))
        }
        """,
        "h20_go_ref",
        False,
    ),
]

# ---------------------------------------------------------------------- club & league apps
TEMPLATES += [
    _t(
        "ligas-api/ligas/settings/production.py",
        """
        from .base import *  # noqa: F401,F403

        DEBUG = False
        ALLOWED_HOSTS = ["ligas.fad-atlantica.org", "api.ligas.fad-atlantica.org"]

        SECRET_KEY = "{V}"

        CSRF_TRUSTED_ORIGINS = ["https://ligas.fad-atlantica.org"]
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
        SESSION_COOKIE_SECURE = True
        CSRF_COOKIE_SECURE = True
        """,
        "h20_django_key",
        True,
    ),
    _t(
        "ligas-api/ligas/settings/base.py",
        """
        from pathlib import Path

        import environ

        env = environ.Env()
        BASE_DIR = Path(__file__).resolve().parent.parent.parent

        SECRET_KEY = {V}

        DATABASES = {
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": "ligas",
                "USER": "ligas",
                "PASSWORD": {V2},
                "HOST": env("DB_HOST", default="localhost"),
            }
        }

        EMAIL_HOST = "smtp.office365.com"
        EMAIL_HOST_USER = "ligas@fad-atlantica.org"
        EMAIL_HOST_PASSWORD = {V3}
        AUTH_PASSWORD_VALIDATORS = [
            {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
        ]
        """,
        "h20_py_ref",
        False,
    ),
    _t(
        "ligas-api/ligas/fixtures/staff_users.json",
        """
        [
          {
            "model": "auth.user",
            "pk": 1,
            "fields": {
              "username": "competiciones",
              "password": "{V}",
              "is_staff": true,
              "email": "competiciones@fad-atlantica.org"
            }
          },
          {
            "model": "auth.user",
            "pk": 2,
            "fields": {
              "username": "delegado.liga2",
              "password": "{V2}",
              "is_staff": false,
              "email": "liga2@fad-atlantica.org"
            }
          }
        ]
        """,
        "h20_pbkdf2",
        False,
    ),
    _t(
        "ligas-api/ligas/settings/local.py",
        """
        from .base import *  # noqa: F401,F403

        DEBUG = True

        # BD compartida del entorno de desarrollo (servidor de la oficina de competiciones)
        DATABASES = {
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": "ligas_dev",
                "USER": "ligas",
                "PASSWORD": "{V}",
                "HOST": "10.20.4.15",
                "PORT": "5432",
            }
        }
        """,
        "h20_weak_pw",
        True,
    ),
    _t(
        "ligas-api/.env",
        """
        DJANGO_SETTINGS_MODULE=ligas.settings.production
        DATABASE_URL=postgres://ligas:{V}@pg-ligas.fad.internal:5432/ligas
        CELERY_BROKER_URL=amqp://ligas:{V2}@rabbitmq.fad.internal:5672/ligas
        CACHE_URL=redis://:{V3}@redis-ligas.fad.internal:6379/1
        SENTRY_ENVIRONMENT=production
        """,
        "h20_url_pw",
        True,
    ),
    _t(
        "ligas-api/locale/fr/LC_MESSAGES/django.po",
        """
        # Traduction française de ligas-api (Fédération Atlantique des Sports)
        msgid ""
        msgstr ""
        "Content-Type: text/plain; charset=UTF-8\\n"
        "Language: fr\\n"

        #: accounts/forms.py:41
        msgid "Forgot your password?"
        msgstr "{V}"

        #: accounts/forms.py:58
        msgid "The password is too short"
        msgstr "{V2}"

        #: accounts/forms.py:77
        msgid "Incorrect password"
        msgstr "{V3}"
        """,
        "h20_i18n_fr",
        False,
    ),
    _t(
        "ligas-api/docker/entrypoint.sh",
        """
        #!/bin/sh
        set -e

        export PGPASSWORD={V}
        until pg_isready -h "$DB_HOST" -U ligas; do
          echo "esperando a postgres..."
          sleep 2
        done

        python manage.py migrate --noinput
        python manage.py collectstatic --noinput
        DJANGO_SUPERUSER_PASSWORD={V2} python manage.py createsuperuser --noinput \\
          --username admin --email it@fad-atlantica.org || true
        exec gunicorn ligas.wsgi:application --bind 0.0.0.0:8000 --workers 4
        """,
        "h20_sh_ref",
        False,
    ),
    _t(
        "ligas-api/notifications/push.py",
        """
        \"\"\"Notificaciones push de resultados (FCM legacy HTTP API; migrar a v1 antes de 2025).\"\"\"

        import requests

        FCM_SERVER_KEY = "{V}"


        def send_goal(topic: str, title: str, body: str) -> None:
            requests.post(
                "https://fcm.googleapis.com/fcm/send",
                headers={"Authorization": f"key={FCM_SERVER_KEY}", "Content-Type": "application/json"},
                json={"to": f"/topics/{topic}", "notification": {"title": title, "body": body}},
                timeout=5,
            )
        """,
        "h20_fcm_key",
        True,
    ),
    _t(
        "clubes-rails/config/master.key",
        """
        {V}
        """,
        "h20_rails_master",
        True,
    ),
    _t(
        "clubes-rails/config/credentials/production.yml.enc",
        """
        {V}
        """,
        "h20_rails_enc",
        False,
    ),
    _t(
        "clubes-rails/config/database.yml",
        """
        default: &default
          adapter: postgresql
          encoding: unicode
          pool: <%= ENV.fetch("RAILS_MAX_THREADS") { 5 } %>

        development:
          <<: *default
          database: clubes_development

        test:
          <<: *default
          database: clubes_test

        production:
          <<: *default
          host: pg-clubes.fad.internal
          database: clubes_production
          username: clubes
          password: {V}

        licencias:
          <<: *default
          host: pg-licencias.fad.internal
          database: licencias
          username: clubes_ro
          password: {V2}
        """,
        "h20_pw",
        True,
    ),
    _t(
        "clubes-rails/config/database.ci.yml",
        """
        default: &default
          adapter: postgresql
          encoding: unicode
          host: <%= ENV.fetch("PGHOST", "postgres") %>
          username: <%= ENV.fetch("PGUSER", "clubes") %>
          password: {V}

        test:
          <<: *default
          database: clubes_test

        staging:
          <<: *default
          database: clubes_staging
          password: {V2}
        """,
        "h20_ruby_ref",
        False,
    ),
    _t(
        "clubes-rails/config/initializers/devise.rb",
        """
        # frozen_string_literal: true

        Devise.setup do |config|
          config.mailer_sender = 'clubes@fad-atlantica.org'
          require 'devise/orm/active_record'

          # Pepper heredado de la app antigua de licencias (no cambiar: invalida todas las contraseñas)
          config.pepper = '{V}'

          config.stretches = Rails.env.test? ? 1 : 12
          config.password_length = 10..128
          config.reset_password_within = 6.hours
        end
        """,
        "h20_secret_key_base",
        True,
    ),
    _t(
        "clubes-rails/config/storage.yml",
        """
        local:
          service: Disk
          root: <%= Rails.root.join("storage") %>

        google:
          service: GCS
          project: fad-clubes-prod
          bucket: fad-clubes-documentos
          credentials:
            type: "service_account"
            project_id: "fad-clubes-prod"
            private_key_id: "5c1f0d2e7a9b4c3d8e6f1a2b3c4d5e6f7a8b9c0d"
            private_key: "{V}"
            client_email: "clubes-storage@fad-clubes-prod.iam.gserviceaccount.com"
            client_id: "104223118947266501342"
        """,
        "h20_gcp_key",
        True,
    ),
    _t(
        "clubes-rails/test/fixtures/users.yml",
        """
        presidente_rca:
          email: presidencia@rcatlantico.example
          encrypted_password: "{V}"
          role: club_admin

        secretario_udn:
          email: secretaria@udnorte.example
          encrypted_password: "{V2}"
          role: club_staff
        """,
        "h20_bcrypt",
        False,
    ),
    _t(
        "clubes-rails/config/locales/es.yml",
        """
        es:
          devise:
            passwords:
              edit:
                change_my_password: "Cambiar mi contraseña"
                new_password: "{V}"
              new:
                forgot_your_password: "{V2}"
            failure:
              invalid: "{V3}"
        """,
        "h20_i18n_es",
        False,
    ),
    _t(
        "fad_app/lib/config/env.dart",
        """
        /// Configuración por flavor; los valores se inyectan con --dart-define en Codemagic.
        class Env {
          static const apiBase = String.fromEnvironment('API_BASE', defaultValue: 'https://api.fad-atlantica.org');

          static String get apiKey => {V};
          static String get streamToken => {V2};
        }
        """,
        "h20_dart_ref",
        False,
    ),
    _t(
        "fad_app/lib/services/api_client.dart",
        """
        import 'package:dio/dio.dart';

        class FadApiClient {
          FadApiClient() : _dio = Dio(BaseOptions(baseUrl: 'https://api.fad-atlantica.org/v2'));

          final Dio _dio;

          // clave de la app móvil (portal de desarrolladores FAD, app "FAD Oficial")
          static const _apiKey = '{V}';

          Future<Response<dynamic>> partidos(String jornada) {
            return _dio.get('/partidos', queryParameters: {'jornada': jornada},
                options: Options(headers: {'X-Api-Key': _apiKey}));
          }
        }
        """,
        "h20_api_key",
        True,
    ),
    _t(
        "fad_app/android/key.properties",
        """
        storePassword={V}
        keyPassword={V2}
        keyAlias=fad-upload
        storeFile=/Users/build/keystores/fad-upload.jks
        """,
        "h20_pw",
        True,
    ),
    _t(
        "fad_app/pubspec.lock",
        """
        packages:
          dio:
            dependency: "direct main"
            description:
              name: dio
              sha256: "{V}"
              url: "https://pub.dev"
            source: hosted
            version: "5.4.3+1"
          firebase_messaging:
            dependency: "direct main"
            description:
              name: firebase_messaging
              sha256: "{V2}"
              url: "https://pub.dev"
            source: hosted
            version: "14.9.4"
          flutter_secure_storage:
            dependency: "direct main"
            description:
              name: flutter_secure_storage
              sha256: "{V3}"
              url: "https://pub.dev"
            source: hosted
            version: "9.2.2"
        sdks:
          dart: ">=3.3.0 <4.0.0"
        """,
        "h20_digest",
        False,
    ),
    _t(
        "fad_app/lib/l10n/app_pt.arb",
        """
        {
          "@@locale": "pt",
          "loginTitle": "Entrar na FAD",
          "passwordLabel": "Senha",
          "forgotPassword": "{V}",
          "passwordTooShort": "{V2}",
          "@passwordTooShort": {
            "description": "Erro de validação no registo"
          }
        }
        """,
        "h20_i18n_pt",
        False,
    ),
    _t(
        "fad_app/ios/fastlane/.env.default",
        """
        FASTLANE_USER=apps@fad-atlantica.org
        FASTLANE_APPLE_APPLICATION_SPECIFIC_PASSWORD={V}
        FASTLANE_TEAM_ID=7QX4M2R9KD
        APP_IDENTIFIER=org.fadatlantica.oficial
        """,
        "h20_apple_asp",
        True,
    ),
    _t(
        "fad_app/ios/fastlane/Matchfile",
        """
        git_url("git@gitlab.fad-atlantica.org:mobile/certificados.git")
        storage_mode("git")
        type("appstore")
        app_identifier(["org.fadatlantica.oficial", "org.fadatlantica.oficial.widgets"])
        username("apps@fad-atlantica.org")

        # passphrase del repo de certificados de match
        ENV["MATCH_PASSWORD"] = "{V}"
        """,
        "h20_pw",
        True,
    ),
    _t(
        "fad_app/codemagic.yaml",
        """
        workflows:
          android-release:
            name: Android release
            environment:
              groups:
                - keystore
                - play_store
              vars:
                CM_KEYSTORE_PASSWORD: {V}
                CM_KEY_PASSWORD: {V2}
              flutter: stable
            scripts:
              - name: Build AAB
                script: |
                  flutter build appbundle --release \\
                    --dart-define=FAD_API_KEY=$FAD_API_KEY
            publishing:
              google_play:
                credentials: {V3}
                track: internal
        """,
        "h20_ci_ref",
        False,
    ),
]

# ---------------------------------------------------------------------- stadium operations
TEMPLATES += [
    _t(
        "estadio/torniquetes/controller.ini",
        """
        ; Controlador de tornos - Estadio Atlántico (puertas 1-14)
        ; Firmware AccessGate 5.2, sincroniza listas blancas de entradas con taquilla cada 30 s

        [general]
        site=ESTADIO_ATLANTICO
        gates=1-14
        offline_mode=allow_signed_qr

        [mqtt]
        host=mqtt.estadios.fad.internal
        port=8883
        username=tornos_atlantico
        password={V}

        [sync]
        url=https://entradas.fad-atlantica.org/api/v1/gates/whitelist
        user=gate-sync
        pass={V2}

        [service]
        ; PIN del menú técnico del panel (no compartir con seguridad privada)
        admin_password={V3}
        """,
        "h20_pw",
        True,
    ),
    _t(
        "estadio/torniquetes/inventario.json",
        """
        {
          "site": "ESTADIO_ATLANTICO",
          "controllers": [
            {"gate": 1, "serial": "{V}", "ip": "10.50.1.11", "fw": "5.2.7"},
            {"gate": 2, "serial": "{V2}", "ip": "10.50.1.12", "fw": "5.2.7"},
            {"gate": 3, "serial": "{V3}", "ip": "10.50.1.13", "fw": "5.1.9"}
          ]
        }
        """,
        "h20_serial",
        False,
    ),
    _t(
        "estadio/scada/hmi/Proyecto_Iluminacion.xml",
        """
        <?xml version="1.0" encoding="utf-8"?>
        <HmiProject name="Iluminacion_Estadio_Atlantico" version="17.0.4">
          <Devices>
            <PLC name="PLC_Focos_Norte" address="10.70.0.10" rack="0" slot="1"/>
            <PLC name="PLC_Focos_Sur" address="10.70.0.11" rack="0" slot="1"/>
          </Devices>
          <UserAdministration>
            <User name="operador" group="Operators" password="{V}" logoff="300"/>
            <User name="mantenimiento" group="Engineers" password="{V2}" logoff="600"/>
            <User name="jefe_estadio" group="Administrators" password="{V3}" logoff="900"/>
          </UserAdministration>
        </HmiProject>
        """,
        "h20_weak_pw",
        True,
    ),
    _t(
        "estadio/scada/plc/s7_marcador.py",
        """
        \"\"\"Escribe el resultado en el marcador (S7-1200, DB12) cuando falla el enlace con graficos.\"\"\"

        import snap7

        PLC_IP = "10.70.0.20"
        PLC_PASSWORD = "{V}"  # protección de acceso nivel 'full access'


        def write_score(home: int, away: int) -> None:
            plc = snap7.client.Client()
            plc.set_session_password(PLC_PASSWORD)
            plc.connect(PLC_IP, 0, 1)
            data = bytearray(4)
            snap7.util.set_int(data, 0, home)
            snap7.util.set_int(data, 2, away)
            plc.db_write(12, 0, data)
            plc.disconnect()
        """,
        "h20_weak_pw",
        True,
    ),
    _t(
        "estadio/cctv/inventario_nvr.csv",
        """
        ubicacion,modelo,ip,usuario,password,canales,firmware
        Tribuna Norte,DS-9664NI-M8,10.40.1.21,admin,{V},64,V4.62.210
        Tribuna Sur,DS-9664NI-M8,10.40.1.22,admin,{V2},64,V4.62.210
        Accesos Puerta 1-7,DS-7732NXI-K4,10.40.1.23,admin,{V3},32,V4.74.105
        Parking VIP,NVR5216-16P-EI,10.40.1.24,admin,{V4},16,V4.002.0000000.3
        """,
        "h20_pw",
        True,
    ),
    _t(
        "estadio/cctv/inventario_nvr_auditoria.csv",
        """
        ubicacion,modelo,ip,usuario,password,canales,firmware
        Tribuna Norte,DS-9664NI-M8,10.40.1.21,admin,{V},64,V4.62.210
        Tribuna Sur,DS-9664NI-M8,10.40.1.22,admin,{V2},64,V4.62.210
        Accesos Puerta 1-7,DS-7732NXI-K4,10.40.1.23,admin,{V3},32,V4.74.105
        """,
        "h20_redacted",
        False,
    ),
    _t(
        "estadio/cctv/onvif_poll.py",
        """
        from onvif import ONVIFCamera

        CAMERAS = {
            "acceso_p1": ("10.40.2.11", 80),
            "acceso_p2": ("10.40.2.12", 80),
            "palco": ("10.40.2.40", 80),
        }


        def snapshots():
            for name, (ip, port) in CAMERAS.items():
                cam = ONVIFCamera(ip, port, "onvif_fad", "{V}")
                media = cam.create_media_service()
                profile = media.GetProfiles()[0]
                yield name, media.GetSnapshotUri({"ProfileToken": profile.token}).Uri
        """,
        "h20_pw",
        True,
    ),
    _t(
        "estadio/cctv/rtsp_muro_video.m3u",
        """
        #EXTM3U
        #EXTINF:-1,Acceso Puerta 1
        rtsp://admin:{V}@10.40.2.11:554/Streaming/Channels/101
        #EXTINF:-1,Acceso Puerta 2
        rtsp://admin:{V2}@10.40.2.12:554/Streaming/Channels/101
        #EXTINF:-1,Palco de autoridades
        rtsp://visor:{V3}@10.40.2.40:554/cam/realmonitor?channel=1&subtype=0
        """,
        "h20_url_pw",
        True,
    ),
    _t(
        "estadio/wifi/hostapd-prensa.conf",
        """
        interface=wlan0
        driver=nl80211
        ssid=FAD-PRENSA
        hw_mode=a
        channel=44
        ieee80211n=1
        ieee80211ac=1
        wmm_enabled=1
        auth_algs=1
        wpa=2
        wpa_key_mgmt=WPA-PSK
        rsn_pairwise=CCMP
        wpa_passphrase={V}
        """,
        "h20_wifi_psk",
        True,
    ),
    _t(
        "estadio/wifi/radius/users",
        """
        # FreeRADIUS users - Wi-Fi de palcos de prensa (802.1X, EAP-PEAP)
        # Cuentas por medio acreditado; se regeneran en cada partido de Copa.
        radio_atlantica   Cleartext-Password := "{V}"
                          Reply-Message := "Bienvenido, Radio Atlántica"
        tv_autonomica     Cleartext-Password := "{V2}"
        agencia_efe       Cleartext-Password := "{V3}"
        """,
        "h20_pw",
        True,
    ),
    _t(
        "estadio/signage/player_config.xml",
        """
        <?xml version="1.0"?>
        <PlayerConfig>
          <Server>https://signage.fad-atlantica.org/xmds.php</Server>
          <DisplayName>Pantalla_Vomitorio_12</DisplayName>
          <ServerKey>{V}</ServerKey>
          <HardwareKey>c4d1e8a0-vomitorio-12</HardwareKey>
          <CollectInterval>300</CollectInterval>
          <Proxy></Proxy>
        </PlayerConfig>
        """,
        "h20_api_key",
        True,
    ),
    _t(
        "estadio/signage/players.yaml",
        """
        # Reproductores de cartelería (BrightSign / Xibo) - Estadio Atlántico
        players:
          - name: marcador-videowall
            mac: "{V}"
            zone: fondo-norte
          - name: vomitorio-12
            mac: "{V2}"
            zone: grada-este
          - name: zona-vip-1
            mac: "{V3}"
            zone: palco
        """,
        "h20_mac",
        False,
    ),
    _t(
        "estadio/signage/.htpasswd",
        """
        operador:{V}
        patrocinio:{V2}
        """,
        "h20_apr1",
        False,
    ),
    _t(
        "estadio/network/snmpd.conf",
        """
        # snmpd - servidores de control de accesos
        sysLocation    CPD Estadio Atlantico, planta -1
        sysContact     noc@fad-atlantica.org
        rocommunity {V} 10.10.0.0/16
        rwcommunity {V2} 10.10.5.10
        """,
        "h20_snmp",
        True,
    ),
    _t(
        "estadio/network/core-sw01.cfg",
        """
        !
        hostname core-sw01-atlantico
        !
        enable secret {V}
        !
        username noc privilege 15 secret {V2}
        username lectura privilege 1 secret {V3}
        !
        aaa new-model
        aaa authentication login default local
        !
        ip ssh version 2
        !
        """,
        "h20_cisco_hash",
        False,
    ),
    _t(
        "estadio/network/acc-sw-puerta7.cfg",
        """
        !
        hostname acc-sw-puerta7
        !
        username admin privilege 15 password 0 {V}
        !
        snmp-server community {V2} RO 10
        !
        interface Vlan50
         description tornos
         ip address 10.50.7.2 255.255.255.0
        !
        line vty 0 4
         password 0 {V3}
         login
        !
        """,
        "h20_pw",
        True,
    ),
    _t(
        "estadio/bms/bacnet-gateway.env",
        """
        BACNET_DEVICE_ID=4102
        BACNET_INTERFACE=eth1
        MQTT_URL=mqtts://mqtt.estadios.fad.internal:8883
        MQTT_USER=bms_gateway
        MQTT_PASSWORD={V}
        INFLUX_URL=http://influx.estadios.fad.internal:8086
        INFLUX_TOKEN={V2}
        """,
        "h20_shared_secret",
        True,
    ),
]

# ---------------------------------------------------------------------- referees & anti-doping
TEMPLATES += [
    _t(
        "arbitraje/db/oracle/01_usuarios.sql",
        """
        -- Esquema ARBITRAJE (Oracle 19c, PDB ARBPDB). Ejecutar como SYSTEM.
        CREATE USER arb_app IDENTIFIED BY "{V}"
          DEFAULT TABLESPACE arb_data
          QUOTA UNLIMITED ON arb_data;
        GRANT CREATE SESSION, CREATE TABLE, CREATE SEQUENCE TO arb_app;

        CREATE USER arb_informes IDENTIFIED BY "{V2}"
          DEFAULT TABLESPACE arb_data;
        GRANT CREATE SESSION TO arb_informes;

        ALTER USER arb_batch IDENTIFIED BY "{V3}" ACCOUNT UNLOCK;
        """,
        "h20_db_pw",
        True,
    ),
    _t(
        "arbitraje/db/oracle/auditoria_usuarios.lst",
        """
        SQL> SELECT username, account_status, spare4 FROM sys.user$ u JOIN dba_users d ON d.username = u.name
          2  WHERE username LIKE 'ARB%';

        USERNAME        ACCOUNT_STATUS  SPARE4
        --------------- --------------- ------------------------------------------------------------
        ARB_APP         OPEN            {V}
        ARB_INFORMES    OPEN            {V2}

        2 rows selected.
        """,
        "h20_oracle_hash",
        False,
    ),
    _t(
        "arbitraje/scripts/export_designaciones.sh",
        """
        #!/bin/bash
        # Exporta las designaciones arbitrales de la jornada (cron: jueves 14:00)
        export ORACLE_HOME=/u01/app/oracle/product/19.0.0/client_1
        export PATH=$ORACLE_HOME/bin:$PATH
        export NLS_LANG=SPANISH_SPAIN.AL32UTF8

        JORNADA=${1:?uso: $0 <jornada>}
        sqlplus -s arb_batch/{V}@//ora-arbitraje.fad.internal:1521/ARBPDB <<EOF
        SET PAGESIZE 0 FEEDBACK OFF
        SPOOL /srv/export/designaciones_j${JORNADA}.csv
        @designaciones.sql ${JORNADA}
        SPOOL OFF
        EXIT
        EOF
        """,
        "h20_db_pw",
        True,
    ),
    _t(
        "arbitraje/app/src/main/resources/application-prod.properties",
        """
        spring.datasource.url=jdbc:oracle:thin:@//ora-arbitraje.fad.internal:1521/ARBPDB
        spring.datasource.username=arb_app
        spring.datasource.password={V}
        spring.datasource.hikari.maximum-pool-size=20
        spring.jpa.hibernate.ddl-auto=validate
        spring.mail.host=smtp.office365.com
        spring.mail.username=designaciones@fad-atlantica.org
        spring.mail.password={V2}
        """,
        "h20_db_pw",
        True,
    ),
    _t(
        "arbitraje/app/src/main/resources/application.properties",
        """
        spring.application.name=arbitraje
        spring.profiles.active=${SPRING_PROFILES_ACTIVE:dev}
        spring.datasource.username=arb_app
        spring.datasource.password={V}
        jasypt.encryptor.algorithm=PBEWITHHMACSHA512ANDAES_256
        jasypt.encryptor.password=${JASYPT_ENCRYPTOR_PASSWORD}
        app.evaluaciones.api-key={V2}
        """,
        "h20_jasypt",
        False,
    ),
    _t(
        "arbitraje/app/src/main/resources/application-staging.yml",
        """
        spring:
          datasource:
            url: jdbc:oracle:thin:@//ora-arbitraje-pre.fad.internal:1521/ARBPRE
            username: arb_app
            password: {V}
        app:
          evaluaciones:
            api-key: {V2}
        """,
        "h20_java_ref",
        False,
    ),
    _t(
        "antidopaje/sql/01_logins.sql",
        """
        USE [master];
        GO
        CREATE LOGIN [adams_sync] WITH PASSWORD = N'{V}', CHECK_POLICY = ON, DEFAULT_DATABASE = [Antidopaje];
        GO
        CREATE LOGIN [informes_ad] WITH PASSWORD = N'{V2}', CHECK_EXPIRATION = OFF;
        GO
        USE [Antidopaje];
        GO
        CREATE USER [adams_sync] FOR LOGIN [adams_sync];
        ALTER ROLE [db_datawriter] ADD MEMBER [adams_sync];
        GO
        """,
        "h20_db_pw",
        True,
    ),
    _t(
        "antidopaje/sql/migracion_logins_sqlprod02.sql",
        """
        -- Generado con sp_help_revlogin en SQLPROD01 para migrar logins a SQLPROD02
        -- Login: adams_sync
        CREATE LOGIN [adams_sync] WITH PASSWORD = {V} HASHED, SID = 0x8A1C2F0E55D34B1F9E1A7C3B2D4E5F60, DEFAULT_DATABASE = [Antidopaje], CHECK_POLICY = ON
        -- Login: informes_ad
        CREATE LOGIN [informes_ad] WITH PASSWORD = {V2} HASHED, SID = 0x1F2E3D4C5B6A79881726354453627180, DEFAULT_DATABASE = [Antidopaje], CHECK_POLICY = OFF
        """,
        "h20_mssql_hash",
        False,
    ),
    _t(
        "antidopaje/ControlesApi/appsettings.Production.json",
        """
        {
          "Logging": {
            "LogLevel": {
              "Default": "Warning"
            }
          },
          "ConnectionStrings": {
            "Antidopaje": "Server=tcp:sqlprod02.fad.internal,1433;Database=Antidopaje;User ID=adams_sync;Password={V};Encrypt=True;TrustServerCertificate=False;",
            "Laboratorio": "Server=tcp:sql-lab.fad.internal,1433;Database=LabResultados;User ID=lab_ro;Password={V2};Encrypt=True;"
          },
          "AllowedHosts": "*"
        }
        """,
        "h20_db_pw",
        True,
    ),
    _t(
        "antidopaje/ControlesApi/appsettings.json",
        """
        {
          "ConnectionStrings": {
            "Antidopaje": "{V}"
          },
          "Adams": {
            "BaseUrl": "https://adams.wada-ama.org/adams/api",
            "Username": "fad-ado",
            "Password": "{V2}"
          }
        }
        """,
        "h20_kv_ref",
        False,
    ),
    _t(
        "antidopaje/PortalLegacy/web.config",
        """
        <?xml version="1.0" encoding="utf-8"?>
        <configuration>
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
          <system.web>
            <compilation targetFramework="4.8" />
          </system.web>
        </configuration>
        """,
        "h20_xml_cipher",
        False,
    ),
    _t(
        "antidopaje/etl/adams_sync.py",
        """
        \"\"\"Sincroniza los formularios de control (DCF) con ADAMS (WADA) cada noche.\"\"\"

        import logging

        import pyodbc
        import requests

        ADAMS_URL = "https://adams.wada-ama.org/adams/api"
        ADAMS_USER = "fad-ado"
        ADAMS_PASSWORD = "{V}"

        SQL_CONN = (
            "DRIVER={ODBC Driver 18 for SQL Server};SERVER=sqlprod02.fad.internal;"
            "DATABASE=Antidopaje;UID=adams_sync;PWD={V2};Encrypt=yes"
        )

        log = logging.getLogger("adams_sync")


        def session() -> requests.Session:
            s = requests.Session()
            r = s.post(f"{ADAMS_URL}/login", json={"username": ADAMS_USER, "password": ADAMS_PASSWORD}, timeout=30)
            r.raise_for_status()
            return s
        """,
        "h20_pw",
        True,
    ),
    _t(
        "antidopaje/informes/muestras_pendientes.csv",
        """
        codigo_muestra,deporte,fecha_control,laboratorio,estado
        {V},atletismo,2024-09-14,LAB-MAD,pendiente
        {V2},natacion,2024-09-15,LAB-LIS,en_analisis
        {V3},futbol,2024-09-21,LAB-MAD,pendiente
        """,
        "h20_sample_id",
        False,
    ),
]

# ---------------------------------------------------------------------- volunteers
TEMPLATES += [
    _t(
        "voluntarios/onboarding/cuentas_voluntarios_copa2024.csv",
        """
        nombre,apellidos,email,usuario,password_temporal,zona,turno
        Lucía,Ferreira Pazos,lucia.ferreira@gmail.com,vol.lferreira,{V},Acreditaciones,mañana
        Mateus,Almeida,mateus.almeida@outlook.com,vol.malmeida,{V2},Puerta 3,tarde
        Aitana,Etxeberria,aitana.etx@gmail.com,vol.aetxeberria,{V3},Zona mixta,tarde
        Ousmane,Diallo,o.diallo@yahoo.fr,vol.odiallo,{V4},Prensa,mañana
        """,
        "h20_weak_pw",
        True,
    ),
    _t(
        "voluntarios/docs/Acceso_wifi_voluntarios.md",
        """
        # Wi-Fi para voluntarios (Copa FAD 2024)

        - Red: **FAD-VOLUNTARIOS**
        - Contraseña: `{V}`
        - Sólo en el centro de voluntariado (pabellón anexo) y en la carpa de acreditaciones.

        Para el día de la final hay una red nueva, `FAD-FINAL-VOL`, con contraseña `{V2}`.
        """,
        "h20_wifi_psk",
        True,
    ),
    _t(
        "voluntarios/export/usuarios_plataforma.csv",
        """
        id,usuario,email,password_hash,ultimo_acceso
        1841,vol.lferreira,lucia.ferreira@gmail.com,{V},2024-06-02 09:14:51
        1842,vol.malmeida,mateus.almeida@outlook.com,{V2},2024-06-02 10:03:12
        1843,vol.aetxeberria,aitana.etx@gmail.com,{V3},2024-06-01 18:47:09
        """,
        "h20_pw_hash",
        False,
    ),
    _t(
        "voluntarios/docs/Welcome_pack_en.md",
        """
        # Volunteer welcome pack (English)

        Log in to the volunteer portal with the temporary password you received by SMS.
        If you see "{V}", use the reset link. Common messages:

        - "{V2}"
        - "{V3}"
        """,
        "h20_i18n_en",
        False,
    ),
]

# ---------------------------------------------------------------------- federation IT
TEMPLATES += [
    _t(
        "it/scripts/New-VolunteerAccounts.ps1",
        """
        <#
            Crea las cuentas temporales de voluntarios en Entra ID a partir del CSV de acreditación.
            Uso: .\\New-VolunteerAccounts.ps1 -Csv .\\voluntarios.csv
        #>
        param([Parameter(Mandatory)][string]$Csv)

        Import-Module Microsoft.Graph.Users
        $tenantDomain = 'fad-atlantica.org'
        $defaultPassword = ConvertTo-SecureString '{V}' -AsPlainText -Force

        Import-Csv $Csv | ForEach-Object {
            $upn = "$($_.usuario)@$tenantDomain"
            New-MgUser -DisplayName "$($_.nombre) $($_.apellidos)" -UserPrincipalName $upn `
                -MailNickname $_.usuario -AccountEnabled `
                -PasswordProfile @{ Password = '{V}'; ForceChangePasswordNextSignIn = $true }
        }
        """,
        "h20_weak_pw",
        True,
    ),
    _t(
        "it/scripts/Backup-SqlAntidopaje.ps1",
        """
        param(
            [string]$Server = 'sqlprod02.fad.internal',
            [string]$Destino = '\\\\nas-cpd\\backups\\sql'
        )

        $password = {V}
        $cred = New-Object System.Management.Automation.PSCredential('backup_sql', (ConvertTo-SecureString $password -AsPlainText -Force))

        Backup-SqlDatabase -ServerInstance $Server -Database 'Antidopaje' -Credential $cred `
            -BackupFile (Join-Path $Destino ("Antidopaje_{0:yyyyMMdd}.bak" -f (Get-Date))) -CompressionOption On
        """,
        "h20_ps_ref",
        False,
    ),
    _t(
        "it/scripts/Connect-FadGraph.ps1",
        """
        # App registration "FAD-IT-Automatizacion" (permisos User.ReadWrite.All, Group.ReadWrite.All)
        $TenantId = '6b1f3c2a-9d4e-4f7a-8c21-0e5d7a9b3f14'
        $ClientId = 'c0a81f3e-44d2-4b6f-9a7e-2f18d5c3b901'
        $ClientSecret = '{V}'

        $secure = ConvertTo-SecureString $ClientSecret -AsPlainText -Force
        $cred = New-Object System.Management.Automation.PSCredential($ClientId, $secure)
        Connect-MgGraph -TenantId $TenantId -ClientSecretCredential $cred -NoWelcome
        """,
        "h20_azure_secret",
        True,
    ),
    _t(
        "it/scripts/credenciales/svc_backup.xml",
        """
        <Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">
          <Obj RefId="0">
            <TN RefId="0">
              <T>System.Management.Automation.PSCredential</T>
              <T>System.Object</T>
            </TN>
            <ToString>System.Management.Automation.PSCredential</ToString>
            <Props>
              <S N="UserName">FAD\\svc_backup</S>
              <SS N="Password">{V}</SS>
            </Props>
          </Obj>
        </Objs>
        """,
        "h20_dpapi",
        False,
    ),
    _t(
        "it/scripts/backup_nas.sh",
        """
        #!/bin/bash
        # Copia nocturna de las grabaciones de vídeo-arbitraje al NAS del CPD
        set -euo pipefail
        ORIGEN=/srv/var-grabaciones
        FECHA=$(date +%F)

        smbclient //nas-cpd.fad.internal/var -U 'FAD/svc_backup%{V}' \\
          -c "prompt OFF; recurse ON; lcd $ORIGEN; mkdir $FECHA; cd $FECHA; mput *"

        sshpass -p '{V2}' rsync -az --delete /srv/var-metadatos/ backup@10.10.9.20:/volume1/var-meta/
        """,
        "h20_pw",
        True,
    ),
    _t(
        "it/ansible/group_vars/estadios/vault.yml",
        """
        vault_nvr_admin_password: !vault |
          {IV}
        vault_radius_secret: !vault |
          {IV2}
        """,
        "h20_ansible_vault",
        False,
    ),
    _t(
        "it/ansible/group_vars/estadios/vars.yml",
        """
        nvr_admin_user: admin
        nvr_admin_password: "{V}"
        radius_secret: "{V2}"
        ntp_servers:
          - hora.roa.es
          - 10.10.0.1
        """,
        "h20_ansible_ref",
        False,
    ),
    _t(
        "it/ansible/inventory/estadios.ini",
        """
        [tornos]
        torno-atl-01 ansible_host=10.50.1.11
        torno-atl-02 ansible_host=10.50.1.12

        [tornos:vars]
        ansible_user=root
        ansible_password={V}

        [signage]
        xibo-atl ansible_host=10.60.3.5 ansible_user=fadadmin ansible_password={V2} ansible_become_pass={V2}

        [windows_scada]
        hmi-norte ansible_host=10.70.0.30

        [windows_scada:vars]
        ansible_connection=winrm
        ansible_user=.\\scada_admin
        ansible_password={V3}
        ansible_winrm_server_cert_validation=ignore
        """,
        "h20_weak_pw",
        True,
    ),
    _t(
        "it/ansible/roles/nvr/defaults/main.yml",
        """
        ---
        nvr_http_port: 80
        nvr_rtsp_port: 554
        nvr_admin_user: admin
        # contraseña por defecto que se aplica a los NVR nuevos antes de entregarlos a seguridad
        nvr_admin_password: "{V}"
        nvr_onvif_user: onvif_fad
        nvr_onvif_password: "{V2}"
        nvr_ntp_server: 10.10.0.1
        """,
        "h20_pw",
        True,
    ),
    _t(
        "it/ssh/deploy_fad_ci",
        """
        {V}
        """,
        "h20_openssh",
        True,
    ),
    _t(
        "it/ssh/authorized_keys",
        """
        # deploy keys autorizadas en los servidores de estadio
        {V}
        {V2}
        """,
        "h20_ssh_pub",
        False,
    ),
    _t(
        "it/ldap/sssd.conf",
        """
        [sssd]
        services = nss, pam
        domains = fad.local

        [domain/fad.local]
        id_provider = ldap
        auth_provider = ldap
        ldap_uri = ldaps://dc01.fad.local, ldaps://dc02.fad.local
        ldap_search_base = dc=fad,dc=local
        ldap_default_bind_dn = CN=svc_linux_bind,OU=Servicios,DC=fad,DC=local
        ldap_default_authtok_type = password
        ldap_default_authtok = {V}
        ldap_tls_reqcert = demand
        """,
        "h20_pw",
        True,
    ),
    _t(
        "it/scripts/sync_ad_clubes.py",
        """
        \"\"\"Da de alta en AD a los delegados de club registrados en clubes-rails.\"\"\"

        from ldap3 import NTLM, Connection, Server

        server = Server("ldaps://dc01.fad.local", use_ssl=True)
        conn = Connection(
            server,
            user="FAD\\\\svc_sync_clubes",
            password="{V}",
            authentication=NTLM,
            auto_bind=True,
        )
        conn.search("OU=Clubes,DC=fad,DC=local", "(objectClass=user)", attributes=["mail"])
        print(len(conn.entries), "delegados en AD")
        """,
        "h20_pw",
        True,
    ),
    _t(
        "it/certs/wildcard.fad-atlantica.org.crt",
        """
        {V}
        {V2}
        """,
        "h20_cert",
        False,
    ),
    _t(
        "it/certs/wildcard.fad-atlantica.org.key",
        """
        {V}
        """,
        "h20_pkcs8",
        True,
    ),
    _t(
        "it/certs/legacy/taquilla-2019.key",
        """
        {V}
        """,
        "h20_encrypted_pem",
        False,
    ),
    _t(
        "it/certs/turnstiles/mqtt-client-atlantico.key",
        """
        {V}
        """,
        "h20_ec_pem",
        True,
    ),
    _t(
        "it/backup/rclone.conf",
        """
        [wasabi-archivo]
        type = s3
        provider = Wasabi
        {V}
        region = eu-central-2
        endpoint = s3.eu-central-2.wasabisys.com
        acl = private
        """,
        "h20_aws_pair",
        True,
    ),
    _t(
        "it/docs/aws_cli_ejemplo.md",
        """
        # Configurar la CLI de AWS (archivo histórico de CloudFront)

        Ejemplo tomado de la documentación oficial de AWS; sustituir por las claves propias:

        ```ini
        [default]
        {V}
        region = eu-west-1
        ```
        """,
        "h20_aws_example",
        False,
    ),
    _t(
        "it/vault/agent.hcl",
        """
        pid_file = "/run/vault-agent.pid"

        vault {
          address = "https://vault.fad.internal:8200"
        }

        auto_auth {
          method "token_file" {
            config = {
              token_file_path = "/etc/vault/.token"
            }
          }
        }

        # token de arranque temporal (quitar cuando AppRole esté listo)
        # VAULT_TOKEN={V}

        template {
          source      = "/etc/vault/templates/stream.ctmpl"
          destination = "/etc/wowza/publish.password"
        }
        """,
        "h20_vault_token",
        True,
    ),
]

# ---------------------------------------------------------------------- CI, Helm, Kubernetes
TEMPLATES += [
    _t(
        "taquilla-web/.gitlab-ci.yml",
        """
        stages: [test, build, deploy]

        variables:
          DOCKER_DRIVER: overlay2
          IMAGE: $CI_REGISTRY_IMAGE:$CI_COMMIT_SHORT_SHA

        test:
          stage: test
          image: registry.gitlab.fad-atlantica.org/base/php:8.3
          services: [mysql:8.0]
          variables:
            MYSQL_ROOT_PASSWORD: {V}
            DB_PASSWORD: {V}
          script:
            - composer install --no-interaction
            - php artisan test --parallel

        build:
          stage: build
          image: docker:24
          script:
            - echo "{V2}" | docker login -u "$CI_REGISTRY_USER" --password-stdin "$CI_REGISTRY"
            - docker build -t "$IMAGE" .
            - docker push "$IMAGE"

        deploy:prod:
          stage: deploy
          script:
            - az login --service-principal -u "$ARM_CLIENT_ID" -p "{V3}" --tenant "$ARM_TENANT_ID"
            - helm upgrade --install taquilla helm/taquilla -f helm/taquilla/values-prod.yaml
          when: manual
        """,
        "h20_ci_ref",
        False,
    ),
    _t(
        "streaming/.gitlab-ci.yml",
        """
        include:
          - project: fad/ci-templates
            file: /docker.yml

        variables:
          SONAR_HOST_URL: https://sonar.fad-atlantica.org
          SONAR_TOKEN: "{V}"

        sonar:
          stage: test
          image: sonarsource/sonar-scanner-cli:5
          script:
            - sonar-scanner -Dsonar.projectKey=fadtv-streaming -Dsonar.token="$SONAR_TOKEN"
          allow_failure: true
        """,
        "h20_sonar",
        True,
    ),
    _t(
        "ops/gitlab-runner/config.toml",
        """
        concurrent = 4
        check_interval = 0

        [session_server]
          session_timeout = 1800

        [[runners]]
          name = "runner-cpd-01"
          url = "https://gitlab.fad-atlantica.org"
          id = 42
          token = "{V}"
          token_obtained_at = 2024-02-14T09:12:44Z
          token_expires_at = 0001-01-01T00:00:00Z
          executor = "docker"
          [runners.docker]
            image = "alpine:3.19"
            privileged = true
            volumes = ["/cache", "/var/run/docker.sock:/var/run/docker.sock"]
        """,
        "h20_gitlab_runner",
        True,
    ),
    _t(
        "ops/scripts/trigger_redeploy.sh",
        """
        #!/bin/sh
        # Relanza el pipeline de despliegue de taquilla (lo usa el bot de Teams)
        curl --fail --request POST \\
          --header "PRIVATE-TOKEN: {V}" \\
          "https://gitlab.fad-atlantica.org/api/v4/projects/117/pipeline?ref=main"
        """,
        "h20_gitlab",
        True,
    ),
    _t(
        "ops/docker/config.json",
        """
        {
          "auths": {
            "https://index.docker.io/v1/": {
              "auth": "{V}"
            },
            "registry.gitlab.fad-atlantica.org": {
              "auth": "{V2}"
            }
          }
        }
        """,
        "h20_basic",
        True,
    ),
    _t(
        "ops/ci/release.gitlab-ci.yml",
        """
        release:images:
          stage: release
          image: docker:24
          variables:
            DOCKERHUB_USER: fadatlantica
            DOCKERHUB_TOKEN: {V}
          script:
            - echo "$DOCKERHUB_TOKEN" | docker login -u "$DOCKERHUB_USER" --password-stdin
            - docker buildx build --push -t fadatlantica/fadtv-player:$CI_COMMIT_TAG .
          rules:
            - if: $CI_COMMIT_TAG
        """,
        "h20_docker_pat",
        True,
    ),
    _t(
        "helm/taquilla/templates/secret.yaml",
        """
        apiVersion: v1
        kind: Secret
        metadata:
          name: {{ include "taquilla.fullname" . }}-db
          labels:
            {{- include "taquilla.labels" . | nindent 4 }}
        type: Opaque
        data:
          password: {V}
          redis-password: {V2}
        """,
        "h20_helm_ref",
        False,
    ),
    _t(
        "helm/taquilla/values-prod.yaml",
        """
        replicaCount: 6

        database:
          host: mysql-taquilla.fad.internal
          username: taquilla_app
          password: "{V}"

        redis:
          auth:
            password: "{V2}"

        ingress:
          hosts:
            - entradas.fad-atlantica.org
        """,
        "h20_pw",
        True,
    ),
    _t(
        "k8s/fadtv/secret-stream-keys.yaml",
        """
        apiVersion: v1
        kind: Secret
        metadata:
          name: wowza-publish
          namespace: fadtv
        type: Opaque
        data:
          estadio_norte: {V}
          estadio_sur: {V2}
          admin: {V3}
        """,
        "h20_b64_pw",
        True,
    ),
    _t(
        "k8s/fadtv/sealed-stream-keys.yaml",
        """
        apiVersion: bitnami.com/v1alpha1
        kind: SealedSecret
        metadata:
          name: wowza-publish
          namespace: fadtv
        spec:
          encryptedData:
            estadio_norte: {V}
            estadio_sur: {V2}
          template:
            metadata:
              name: wowza-publish
              namespace: fadtv
        """,
        "h20_sealed",
        False,
    ),
    _t(
        "k8s/ligas/secrets.enc.yaml",
        """
        apiVersion: v1
        kind: Secret
        metadata:
            name: ligas-api
            namespace: ligas
        type: Opaque
        stringData:
            DJANGO_SECRET_KEY: {V}
            DATABASE_PASSWORD: {V2}
        sops:
            azure_kv:
                - vault_url: https://kv-fad-platform.vault.azure.net
                  name: sops-ligas
                  version: 6f1a0b3e9c2d4f5a8b7c6d5e4f3a2b1c
            lastmodified: "2024-08-30T07:41:12Z"
            mac: {V3}
            version: 3.8.1
        """,
        "h20_sops",
        False,
    ),
]

# ---------------------------------------------------------------------- Terraform: Azure / GCP
TEMPLATES += [
    _t(
        "infra/azure/main.tf",
        """
        provider "azurerm" {
          features {}
          subscription_id = var.subscription_id
          client_id       = var.arm_client_id
          client_secret   = {V}
          tenant_id       = var.tenant_id
        }

        resource "azurerm_mssql_server" "antidopaje" {
          name                         = "sql-fad-antidopaje"
          resource_group_name          = azurerm_resource_group.antidopaje.name
          location                     = "westeurope"
          version                      = "12.0"
          administrator_login          = "fadsqladmin"
          administrator_login_password = {V2}
          minimum_tls_version          = "1.2"
        }
        """,
        "h20_tf_ref",
        False,
    ),
    _t(
        "infra/azure/terraform.tfvars",
        """
        subscription_id = "2f4c8e1a-7b3d-4c6e-9a1f-5d8b2c7e4a90"
        tenant_id       = "6b1f3c2a-9d4e-4f7a-8c21-0e5d7a9b3f14"
        arm_client_id   = "9d2e7c41-3a5b-4e8f-b0c6-1f7a2d9e8c35"
        arm_client_secret = "{V}"
        location        = "westeurope"
        """,
        "h20_azure_secret",
        True,
    ),
    _t(
        "infra/azure/terraform.tfstate",
        """
        {
          "version": 4,
          "terraform_version": "1.7.5",
          "serial": 88,
          "lineage": "b0e6f3a2-1c4d-4e7f-8a9b-2c3d4e5f6a7b",
          "resources": [
            {
              "mode": "managed",
              "type": "azurerm_storage_account",
              "name": "media",
              "provider": "provider[\\"registry.terraform.io/hashicorp/azurerm\\"]",
              "instances": [
                {
                  "attributes": {
                    "name": "stfadtvmedia",
                    "primary_access_key": "{V}",
                    "secondary_access_key": "{V2}",
                    "primary_blob_endpoint": "https://stfadtvmedia.blob.core.windows.net/"
                  },
                  "sensitive_attributes": []
                }
              ]
            }
          ]
        }
        """,
        "h20_azure_storage_key",
        True,
    ),
    _t(
        "infra/azure/keyvault.tf",
        """
        resource "azurerm_key_vault_secret" "wowza_admin" {
          name         = "wowza-admin"
          value        = "{V}"
          key_vault_id = azurerm_key_vault.fadtv.id
        }

        resource "azurerm_key_vault_secret" "redsys_terminal_001" {
          name         = "redsys-terminal-001"
          value        = "{V2}"
          key_vault_id = azurerm_key_vault.taquilla.id
          content_type = "text/plain"
        }
        """,
        "h20_pw",
        True,
    ),
    _t(
        "infra/azure/cdn.tf",
        """
        resource "azurerm_cdn_frontdoor_rule" "hls_token" {
          name                      = "hlstoken"
          cdn_frontdoor_rule_set_id = azurerm_cdn_frontdoor_rule_set.fadtv.id
          order                     = 1

          actions {
            request_header_action {
              header_action = "Append"
              header_name   = "X-Edge-Token-Key"
              value         = "{V}"
            }
          }
        }
        """,
        "h20_hex_key",
        True,
    ),
    _t(
        "infra/azure/README.md",
        """
        # Infra Azure de la FAD

        | Entorno | Suscripción | Tenant |
        |---------|-------------|--------|
        | prod    | `{V}` | `{V2}` |
        | pre     | `{V3}` | `{V2}` |

        Los secretos viven en `kv-fad-platform`; nada de credenciales en este repo.
        """,
        "h20_uuid",
        False,
    ),
    _t(
        "infra/gcp/sa-fadtv-transcoder.json",
        """
        {
          "type": "service_account",
          "project_id": "fadtv-transcoding",
          "private_key_id": "a3c91f0e2b7d4e6f8a1c5b9d0e3f7a2c4b6d8e1f",
          "private_key": "{V}",
          "client_email": "transcoder@fadtv-transcoding.iam.gserviceaccount.com",
          "client_id": "113894027165530982214",
          "auth_uri": "https://accounts.google.com/o/oauth2/auth",
          "token_uri": "https://oauth2.googleapis.com/token",
          "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
          "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/transcoder%40fadtv-transcoding.iam.gserviceaccount.com",
          "universe_domain": "googleapis.com"
        }
        """,
        "h20_gcp_key",
        True,
    ),
    _t(
        "infra/gcp/variables.tf",
        """
        variable "project_id" {
          type    = string
          default = "fadtv-transcoding"
        }

        variable "db_password" {
          type      = string
          sensitive = true
        }

        locals {
          db_password  = {V}
          cdn_sign_key = {V2}
        }
        """,
        "h20_tf_ref",
        False,
    ),
    _t(
        "infra/gcp/cloudsql.tf",
        """
        resource "google_sql_user" "ligas" {
          name     = "ligas"
          instance = google_sql_database_instance.ligas.name
          password = "{V}"
        }

        resource "google_sql_user" "metabase" {
          name     = "metabase_ro"
          instance = google_sql_database_instance.ligas.name
          password = "{V2}"
        }
        """,
        "h20_pw",
        True,
    ),
    _t(
        "infra/cloudflare/providers.tf",
        """
        terraform {
          required_providers {
            cloudflare = {
              source  = "cloudflare/cloudflare"
              version = "~> 4.30"
            }
          }
        }

        provider "cloudflare" {
          # token con permisos Zone:DNS:Edit sobre fad-atlantica.org
          api_token = "{V}"
        }
        """,
        "h20_cloudflare",
        True,
    ),
]

# ---------------------------------------------------------------------- alerting & monitoring
TEMPLATES += [
    _t(
        "ops/alertas/teams_alert.py",
        """
        import requests

        # canal "FAD TV - Sala de control" en Teams
        WEBHOOK_SALA_CONTROL = "{V}"


        def alerta(titulo: str, texto: str) -> None:
            card = {"@type": "MessageCard", "themeColor": "D7000F", "title": titulo, "text": texto}
            requests.post(WEBHOOK_SALA_CONTROL, json=card, timeout=5).raise_for_status()
        """,
        "h20_teams_webhook",
        True,
    ),
    _t(
        "ops/alertas/alertmanager.yml",
        """
        route:
          receiver: slack-noc
          group_by: [alertname, estadio]
          routes:
            - matchers: [severity="critical"]
              receiver: slack-guardia

        receivers:
          - name: slack-noc
            slack_configs:
              - api_url: {V}
                channel: "#noc-estadios"
                send_resolved: true
          - name: slack-guardia
            slack_configs:
              - api_url: {V2}
                channel: "#guardia-it"
        """,
        "h20_slack_webhook",
        True,
    ),
    _t(
        "ops/alertas/telegram_bot.py",
        """
        import telebot

        # @FadTornosBot - avisa al jefe de seguridad cuando un torno pasa a modo offline
        bot = telebot.TeleBot("{V}", parse_mode="HTML")
        CHAT_SEGURIDAD = -1001873265541


        def aviso(texto: str) -> None:
            bot.send_message(CHAT_SEGURIDAD, texto)
        """,
        "h20_telegram",
        True,
    ),
    _t(
        "ops/alertas/whatsapp_cloud.js",
        """
        // WhatsApp Cloud API - recordatorios de turno a voluntarios
        const PHONE_NUMBER_ID = '118273645509182';
        const ACCESS_TOKEN = '{V}';

        async function recordatorio(telefono, nombre, turno) {
          const res = await fetch(`https://graph.facebook.com/v19.0/${PHONE_NUMBER_ID}/messages`, {
            method: 'POST',
            headers: { Authorization: `Bearer ${ACCESS_TOKEN}`, 'Content-Type': 'application/json' },
            body: JSON.stringify({
              messaging_product: 'whatsapp',
              to: telefono,
              type: 'template',
              template: { name: 'recordatorio_turno', language: { code: 'es' },
                components: [{ type: 'body', parameters: [{ type: 'text', text: nombre }, { type: 'text', text: turno }] }] },
            }),
          });
          return res.json();
        }

        module.exports = { recordatorio };
        """,
        "h20_whatsapp_token",
        True,
    ),
    _t(
        "ops/alertas/sms.rb",
        """
        require 'twilio-ruby'

        # SMS de emergencia a árbitros (cambios de designación de última hora)
        ACCOUNT_SID = 'AC5f2e8d1c7b3a9e4f6d0c2b8a7e1f3d5c'
        AUTH_TOKEN  = '{V}'

        def avisar_arbitro(telefono, texto)
          client = Twilio::REST::Client.new(ACCOUNT_SID, AUTH_TOKEN)
          client.messages.create(from: '+34910000000', to: telefono, body: texto)
        end
        """,
        "h20_twilio",
        True,
    ),
    _t(
        "ops/monitoring/datadog.yaml",
        """
        api_key: {V}
        site: datadoghq.eu
        hostname_fqdn: true
        tags:
          - env:prod
          - service:taquilla
        logs_enabled: true
        process_config:
          process_collection:
            enabled: true
        """,
        "h20_datadog",
        True,
    ),
    _t(
        "ops/monitoring/grafana/datasources.yaml",
        """
        apiVersion: 1
        datasources:
          - name: Influx-Estadios
            type: influxdb
            url: http://influx.estadios.fad.internal:8086
            jsonData:
              version: Flux
              organization: fad
            secureJsonData:
              token: {V}
          - name: SQL-Antidopaje
            type: mssql
            url: sqlprod02.fad.internal:1433
            user: grafana_ro
            secureJsonData:
              password: {V2}
        """,
        "h20_placeholder",
        False,
    ),
    _t(
        "streaming/docker/wowza.Dockerfile",
        """
        FROM wowzamedia/wowza-streaming-engine-linux:4.8.27

        ENV WSE_MGR_USER=admin \\
            WSE_MGR_PASS={V} \\
            WSE_LIC=/run/secrets/wowza_license

        COPY conf/live/Application.xml /usr/local/WowzaStreamingEngine/conf/live/Application.xml
        COPY conf/publish.password /usr/local/WowzaStreamingEngine/conf/publish.password
        EXPOSE 1935 8086 8087 8088
        """,
        "h20_pw",
        True,
    ),
]

# ---------------------------------------------------------------------- wikis, runbooks, chats
TEMPLATES += [
    _t(
        "wiki/es/FAD-TV/Procedimiento-retransmision.md",
        """
        # Procedimiento de retransmisión (Liga 1)

        **Responsable:** realización FAD TV · **Última revisión:** 12/09/2024

        ## 1. Antes del partido (T-90 min)
        - Comprobar enlace SRT desde la unidad móvil (ver *Runbook ingesta*).
        - En OBS seleccionar el perfil `FAD_Liga1`.

        ## 2. Claves de emisión
        | Plataforma | Clave |
        |------------|-------|
        | YouTube (canal FAD TV) | `{V}` |
        | YouTube (FAD TV Femenino) | `{V2}` |

        > Si YouTube da "clave de retransmisión no válida", regenerar en YouTube Studio y avisar
        > al grupo de realización.
        """,
        "h20_yt_key",
        True,
    ),
    _t(
        "wiki/fr/Billetterie/Passerelle-de-paiement.md",
        """
        # Passerelle de paiement – billetterie

        Configuration du compte Stripe utilisé pour les matchs à l'extérieur (Coupe atlantique).

        - Clé publiable : voir `ticket-gateway/src/config/public.ts`
        - Clé secrète (production) : `{V}`
        - Clé restreinte pour le rapprochement comptable : `{V2}`

        ⚠️ Ne pas copier ces clés dans les tickets Jira.
        """,
        "h20_stripe",
        True,
    ),
    _t(
        "wiki/en/Onboarding/IT-accounts.md",
        """
        # IT accounts for new staff

        Connection strings in this page are **examples** – the hosts do not exist.

        ```
        psql "postgresql://analyst:{V}@db.example.com:5432/ligas"
        mysql -h mysql.example.org -u taquilla -p'{V2}' taquilla
        sqlcmd -S sql.test -U informes_ad -P '{V3}'
        ```

        Real credentials are issued through the IT service desk (Teams: *IT Servicios*).
        """,
        "h20_doc_pw",
        False,
    ),
    _t(
        "wiki/es/Seguridad/Politica-de-contrasenas.md",
        """
        # Política de contraseñas de la FAD

        - Longitud mínima: {V} caracteres (cuentas de administrador y de servicio: {V2}).
        - Caducidad: cada 180 días para cuentas de servicio con acceso a datos antidopaje.
        - Bloqueo tras 5 intentos fallidos.
        - Prohibido reutilizar las últimas 5 contraseñas.
        """,
        "h20_policy_num",
        False,
    ),
    _t(
        "wiki/pt/Estadio/Rede-imprensa.md",
        """
        # Rede da tribuna de imprensa

        Credenciais para a rede dos jornalistas (jogos da seleção no Estádio Atlântico):

        - SSID: `FAD-PRENSA`
        - Senha WPA2: `{V}`

        Para a sala de conferências usar a rede `FAD-CONF` (senha `{V2}`).
        """,
        "h20_wifi_psk",
        True,
    ),
    _t(
        "chats/whatsapp/Operaciones Estadio Norte.txt",
        """
        14/09/24, 17:02 - Jorge (Seguridad): Buenas, el NVR de tribuna norte no me deja entrar
        14/09/24, 17:03 - Marta IT: usuario admin, contraseña {V}
        14/09/24, 17:03 - Marta IT: y no la cambies que la tiene también la empresa de mantenimiento
        14/09/24, 17:10 - Jorge (Seguridad): 👍 dentro
        14/09/24, 18:45 - Raúl Tornos: los tornos de la puerta 7 están en offline otra vez
        14/09/24, 18:46 - Marta IT: entra al panel técnico con {V2} y reinicia el servicio de sync
        14/09/24, 18:52 - Raúl Tornos: solucionado, gracias!!
        """,
        "h20_pw",
        True,
    ),
    _t(
        "chats/whatsapp/Arbitros IT.txt",
        """
        02/10/24, 09:15 - Comité Técnico: ¿alguien tiene la contraseña del portal de designaciones?
        02/10/24, 09:17 - Soporte IT: No se pasan contraseñas por aquí. Te la he mandado por SMS: {V}
        02/10/24, 09:18 - Comité Técnico: recibido, gracias
        02/10/24, 11:40 - Soporte IT: recordad que la del VAR también se cambió ({V2})
        """,
        "h20_redacted",
        False,
    ),
    _t(
        "chats/teams/fadtv-sala-control.json",
        """
        {
          "channel": "FAD TV - Sala de control",
          "messages": [
            {
              "from": "Iván Prado",
              "createdDateTime": "2024-10-05T18:31:07Z",
              "body": "Se ha caído la emisión principal, he regenerado la clave: {V}"
            },
            {
              "from": "Sara Lopes",
              "createdDateTime": "2024-10-05T18:32:40Z",
              "body": "Ok, la meto en el restreamer. La del canal de respaldo sigue siendo {V2}?"
            },
            {
              "from": "Iván Prado",
              "createdDateTime": "2024-10-05T18:33:02Z",
              "body": "sí"
            }
          ]
        }
        """,
        "h20_stream_key",
        True,
    ),
    _t(
        "chats/teams/incidencia-taquilla-INC4471.html",
        """
        <div class="message" data-author="Carlos Méndez" data-time="2024-11-02 20:14">
          <p>Reproduzco el cobro duplicado con este token de admin (caduca mañana):</p>
          <pre>curl -H "Authorization: Bearer {V}" https://entradas.fad-atlantica.org/admin/api/orders/duplicates</pre>
        </div>
        <div class="message" data-author="Paula Rey" data-time="2024-11-02 20:16">
          <p>Visto, lo miro con el proveedor.</p>
        </div>
        """,
        "h20_jwt",
        True,
    ),
    _t(
        "runbooks/en/drm-key-rotation.md",
        """
        # Runbook: DRM key rotation

        Key ids are **not** secret; they are embedded in every manifest (`default_KID`).

        | Asset | KID |
        |-------|-----|
        | Live Liga 1 | `{V}` |
        | Live Copa   | `{V2}` |
        | VOD archive | `{V3}` |

        Content keys themselves are fetched from the license server and never written here.
        """,
        "h20_kid",
        False,
    ),
    _t(
        "runbooks/es/failover-taquilla.md",
        """
        # Failover de la base de datos de taquilla

        1. Comprobar la réplica: `mysql -h mysql-taquilla-b.fad.internal -u taquilla_app -p'{V}' -e 'SHOW REPLICA STATUS\\G'`
        2. Promocionar la réplica y cambiar el DNS `mysql-taquilla.fad.internal` al nodo B.
        3. Reiniciar los workers: `kubectl -n taquilla rollout restart deploy/taquilla-worker`
        4. Validar una compra de prueba con la tarjeta de test del banco.
        """,
        "h20_db_pw",
        True,
    ),
    _t(
        "notebooks/asistencia_estadios.ipynb",
        r"""
        {
         "cells": [
          {
           "cell_type": "markdown",
           "metadata": {},
           "source": ["# Asistencia por jornada (tornos vs entradas vendidas)"]
          },
          {
           "cell_type": "code",
           "execution_count": 3,
           "metadata": {},
           "outputs": [],
           "source": [
            "import pandas as pd\n",
            "import sqlalchemy as sa\n",
            "engine = sa.create_engine('mssql+pyodbc://informes_ad:{V}@sqlprod02.fad.internal/Aforo?driver=ODBC+Driver+18+for+SQL+Server')\n",
            "df = pd.read_sql('SELECT jornada, puerta, COUNT(*) AS accesos FROM accesos GROUP BY jornada, puerta', engine)"
           ]
          }
         ],
         "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
         "nbformat": 4,
         "nbformat_minor": 5
        }
        """,
        "h20_url_pw",
        True,
    ),
]
