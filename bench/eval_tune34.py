"""Blind part ``tune34``: a regional logistics and ride-hailing company, Rantau Mobility
(PT Rantau Mobilitas Nusantara in Indonesia, Rantau Việt Nam in Ho Chi Minh City and Hanoi,
Rantau Lojistik A.Ş. in Istanbul), with its payment, messaging and mapping vendors. Files are
the dispatch and pricing services in Go (TOML/YAML config, MQTT and Kafka clients, tests), the
payments platform in Java/Kotlin Spring Boot and Node/TypeScript with regional gateways
(Midtrans, Xendit, MoMo, VNPay, ZaloPay, iyzico, PayTR: .env files, application YAML and
properties, PHP and Laravel adapters, notification payload fixtures), the driver and rider apps
(Kotlin/Android Gradle builds and keystore properties, Flutter/Dart, Swift, React Native, ARB,
strings.xml and Localizable.strings bundles in Indonesian, Vietnamese and Turkish), notification
services for SMS and push (Twilio, Vonage, Infobip, Netgsm, eSMS.vn, Zenziva, FCM, APNs .p8
keys, OneSignal, Huawei Push), maps (Google Maps, Mapbox download tokens in .netrc and Gradle,
HERE), fleet telematics (C firmware headers, Traccar XML, device and SIM inventories, Mosquitto),
warehouse handheld scanners (Zebra StageNow XML, .NET WMS appsettings, PowerShell and batch
provisioning), the data platform (Airflow, dbt, Kafka/Confluent, Spark/Scala, ClickHouse and
BigQuery notebooks, SQL), customer support tooling (Zendesk, Freshdesk, a Rails admin, Django
back office, an LLM summariser), infrastructure (Terraform for AWS and Alibaba Cloud, Helm,
Kubernetes, Compose, Ansible, Vault), CI (GitHub Actions, GitLab CI, Jenkins), and runbooks,
tickets, chat exports and READMEs in English, Indonesian, Vietnamese and Turkish. Written blind
(without seeing the scanner, its rules or other parts' templates).

Look-alikes sit in the same kinds of files under the same key names: gateway signatures in
notification payloads and return URLs (Midtrans ``signature_key``, VNPay ``vnp_SecureHash``,
MoMo ``signature``), public client keys (Midtrans ``Mid-client-``, Xendit ``xnd_public_``,
Mapbox ``pk.``), account and messaging-service SIDs, password hashes (bcrypt, PBKDF2, argon2,
SCRAM, apr1, sha512-crypt, Postgres md5), values encrypted at rest (SOPS, sealed secrets,
Ansible Vault, Jasypt, AWS KMS, Vault transit, encrypted PEM keys), references to environment
variables and secret stores in each language and tool, placeholders and redactions in four
languages, public keys, certificates, SSH keys, APNs key ids and Firebase app ids, identifiers
shaped like secrets (IMEIs, ICCIDs, VINs, plate numbers, order and trip ids, object ids, UUIDs,
image digests, lockfile and Gradle checksums, git SHAs), UI text about passwords, documented
example credentials and credentials on documentation hosts, and test values that say they are
fake.
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
B32L = string.ascii_lowercase + "234567"
PW_SYMBOLS = "!#%^*-_=+.@"
CRYPT64 = "./" + ALNUM
VIN_CHARS = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"


class Tune34Values(evalset.Values):
    """Value generators of the tune34 part; every name starts with ``t34_``."""

    def __init__(self, seed: int, flavour: str) -> None:
        super().__init__(seed, flavour)
        self.words = [
            "macet",
            "angkot",
            "bajaj",
            "rendang",
            "durian",
            "gerimis",
            "xemay",
            "phobo",
            "cayphe",
            "banhmi",
            "simit",
            "vapur",
            "kopru",
            "lokum",
            "bogaz",
            "monsun",
        ]
        self.users = [
            "dispatch",
            "payments",
            "driver_api",
            "rider_api",
            "telematics",
            "wms",
            "dwh_etl",
            "support",
            "notif",
            "fleet",
        ]

    # ------------------------------------------------------------------ helpers (not slots)
    def t34_util_b64(self, n: int, urlsafe: bool = False, pad: bool = True) -> str:
        raw = self.rng.randbytes(n)
        out = base64.urlsafe_b64encode(raw) if urlsafe else base64.b64encode(raw)
        text = out.decode()
        return text if pad else text.rstrip("=")

    def t34_util_crc_token(self, prefix: str) -> str:
        body = self.s(30, ALNUM)
        crc = zlib.crc32(body.encode())
        check = ""
        while crc:
            crc, rest = divmod(crc, 62)
            check = evalset.B62[rest] + check
        return f"{prefix}_{body}{check.rjust(6, '0')}"

    def t34_util_armor(self, label: str, der: bytes) -> str:
        body = base64.b64encode(der).decode()
        rows = [body[i : i + 64] for i in range(0, len(body), 64)]
        return f"-----BEGIN {label}-----\n" + "\n".join(rows) + f"\n-----END {label}-----"

    def t34_util_hex(self, n: int) -> str:
        return self.s(n, HEX)

    def t34_util_uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def t34_util_luhn(self, body: str) -> str:
        total = 0
        for i, ch in enumerate(reversed(body)):
            d = int(ch)
            if i % 2 == 0:
                d *= 2
                if d > 9:
                    d -= 9
            total += d
        return body + str((10 - total % 10) % 10)

    # ------------------------------------------------------------------ positives: passwords
    def t34_pw(self) -> str:
        shape = self.rng.randrange(6)
        word = self.pick(self.words)
        if shape == 0:
            return word.capitalize() + str(self.rng.randrange(10, 9999)) + self.pick(list("!#%*.+"))
        if shape == 1:
            return self.s(1, string.ascii_letters) + self.s(
                self.rng.randrange(12, 22), ALNUM + PW_SYMBOLS
            )
        if shape == 2:
            other = self.pick([w for w in self.words if w != word])
            return f"{word.capitalize()}-{other}-{self.s(3, DIGITS)}"
        if shape == 3:
            return "Rnt" + self.s(11, ALNUM) + self.pick(list("!#%@"))
        if shape == 4:
            return self.s(18, ALNUM)
        leet = word.replace("a", "@").replace("o", "0").replace("e", "3").replace("i", "1")
        return leet[0].upper() + leet[1:] + "_" + self.s(4, DIGITS)

    def t34_weak_pw(self) -> str:
        shape = self.rng.randrange(4)
        if shape == 0:
            return self.pick(
                [
                    "Jakarta2024!",
                    "Rantau123",
                    "Istanbul34!",
                    "Saigon@2023",
                    "admin123",
                    "P@ssw0rd",
                    "Gudang123",
                    "Kho12345",
                    "Depo2022!",
                ]
            )
        if shape == 1:
            return "Rantau" + str(self.rng.randrange(2018, 2026)) + self.pick(["", "!", "#", "@"])
        if shape == 2:
            return self.pick(self.words) + self.pick(["1", "123", "2024", "!", "34"])
        return self.pick(["Bismillah", "Merdeka", "Galatasaray", "Fenerbahce", "Hanoi"]) + str(
            self.rng.randrange(1, 2026)
        )

    def t34_url_pw(self) -> str:
        if self.rng.randrange(2):
            return self.pick(self.words).capitalize() + self.s(5, DIGITS)
        return self.s(1, string.ascii_letters) + self.s(self.rng.randrange(14, 24), ALNUM + "-_.~")

    def t34_mqtt_pw(self) -> str:
        if self.rng.randrange(2):
            return self.s(24, ALNUM)
        return "-".join(self.pick(self.words) for _ in range(3)) + "-" + self.s(2, DIGITS)

    def t34_wifi_psk(self) -> str:
        shape = self.rng.randrange(3)
        if shape == 0:
            site = self.pick(["Cikarang", "Cakung", "BinhDuong", "LongBien", "Tuzla", "Hadimkoy"])
            return f"Gudang{site}#{self.s(4, DIGITS)}"
        if shape == 1:
            return self.s(20, ALNUM)
        return self.pick(self.words).capitalize() + self.s(6, ALNUM) + self.pick(list("!#%*"))

    def t34_basic_b64(self) -> str:
        user = self.pick([*self.users, "svc-ci", "partner-bluebird", "staging"])
        return base64.b64encode(f"{user}:{self.t34_pw()}".encode()).decode()

    # ------------------------------------------------------------------ positives: gateways
    def t34_midtrans_server(self) -> str:
        prefix = self.pick(["Mid-server-", "Mid-server-", "SB-Mid-server-"])
        return prefix + self.s(24, URLSAFE)

    def t34_xendit_secret(self) -> str:
        env = self.pick(["production", "production", "development"])
        return f"xnd_{env}_" + self.t34_util_b64(49)

    def t34_xendit_callback(self) -> str:
        return self.s(48, ALNUM)

    def t34_momo_secret(self) -> str:
        return self.s(32, ALNUM)

    def t34_vnpay_secret(self) -> str:
        return self.s(32, string.ascii_uppercase)

    def t34_zalopay_key(self) -> str:
        return self.s(32, ALNUM)

    def t34_iyzico_key(self) -> str:
        return self.pick(["", "", "sandbox-"]) + self.s(32, ALNUM)

    def t34_paytr_key(self) -> str:
        return self.s(16, ALNUM)

    # ------------------------------------------------------------------ positives: messaging
    def t34_twilio_token(self) -> str:
        return self.s(32, HEX)

    def t34_twilio_basic(self) -> str:
        return f"AC{self.s(32, HEX)}:{self.s(32, HEX)}"

    def t34_vonage_secret(self) -> str:
        return self.s(16, ALNUM)

    def t34_infobip_key(self) -> str:
        return f"{self.s(32, HEX)}-{self.t34_util_uuid()}"

    def t34_esms_key(self) -> str:
        return self.s(32, HEXU)

    def t34_fcm_key(self) -> str:
        return "AAAA" + self.s(7, URLSAFE) + ":APA91b" + self.s(134, URLSAFE)

    def t34_onesignal(self) -> str:
        return "os_v2_app_" + self.s(113, B32L)

    def t34_huawei_secret(self) -> str:
        return self.s(64, HEX)

    def t34_slack_webhook(self) -> str:
        return (
            f"https://hooks.slack.com/services/T{self.s(10, UPNUM)}"
            f"/B{self.s(10, UPNUM)}/{self.s(24, ALNUM)}"
        )

    def t34_slack_bot(self) -> str:
        return f"xoxb-{self.s(12, DIGITS)}-{self.s(13, DIGITS)}-{self.s(24, ALNUM)}"

    def t34_telegram(self) -> str:
        return f"{self.rng.randrange(10**9, 8 * 10**9)}:AA{self.s(33, URLSAFE)}"

    def t34_teams_webhook(self) -> str:
        ids = [self.t34_util_uuid() for _ in range(3)]
        return (
            f"https://rantaumobility.webhook.office.com/webhookb2/{ids[0]}@{ids[1]}"
            f"/IncomingWebhook/{self.s(32, HEX)}/{ids[2]}"
        )

    def t34_gchat_webhook(self) -> str:
        return (
            f"https://chat.googleapis.com/v1/spaces/AAAA{self.s(7, URLSAFE)}/messages"
            f"?key=AIza{self.s(35, URLSAFE)}&token={self.s(43, URLSAFE)}"
        )

    def t34_sendgrid(self) -> str:
        return f"SG.{self.s(22, URLSAFE)}.{self.s(43, URLSAFE)}"

    # ------------------------------------------------------------------ positives: maps, cloud
    def t34_mapbox_sk(self) -> str:
        payload = json.dumps(
            {"u": self.pick(["rantau", "rantau-maps", "rantauvn"]), "a": self.s(25, LOWNUM)},
            separators=(",", ":"),
        )
        head = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
        return f"sk.{head}.{self.s(22, URLSAFE)}"

    def t34_google_key(self) -> str:
        return "AIza" + self.s(35, URLSAFE)

    def t34_here_key(self) -> str:
        return self.s(43, URLSAFE)

    def t34_gcp_pk(self) -> str:
        der = b"\x30\x82\x04\xbe\x02\x01\x00\x30\x0d" + self.rng.randbytes(1210)
        return self.t34_util_armor("PRIVATE KEY", der).replace("\n", "\\n") + "\\n"

    def t34_p8_key(self) -> str:
        der = b"\x30\x81\x93\x02\x01\x00\x30\x13" + self.rng.randbytes(142)
        return self.t34_util_armor("PRIVATE KEY", der)

    def t34_rsa_pem(self) -> str:
        der = b"\x30\x82\x04\xa4\x02\x01\x00\x02\x82\x01\x01\x00" + self.rng.randbytes(1180)
        return self.t34_util_armor("RSA PRIVATE KEY", der)

    def t34_openssh(self) -> str:
        raw = b"openssh-key-v1\x00\x00\x00\x00\x04none\x00\x00\x00\x04none" + self.rng.randbytes(
            360
        )
        return self.t34_util_armor("OPENSSH PRIVATE KEY", raw)

    def t34_aws_id(self) -> str:
        return "AKIA" + self.s(16, string.ascii_uppercase + "234567")

    def t34_aws_secret(self) -> str:
        return self.s(40, ALNUM + "/+")

    def t34_aws_ini_pair(self) -> str:
        return (
            f"aws_access_key_id = {self.t34_aws_id()}\n"
            f"aws_secret_access_key = {self.t34_aws_secret()}"
        )

    def t34_aws_yaml_pair(self) -> str:
        return (
            f"AWS_ACCESS_KEY_ID: {self.t34_aws_id()}\n"
            f"AWS_SECRET_ACCESS_KEY: {self.t34_aws_secret()}"
        )

    def t34_alicloud_pair(self) -> str:
        return f'access_key = "LTAI5t{self.s(18, ALNUM)}"\nsecret_key = "{self.s(30, ALNUM)}"'

    # ------------------------------------------------------------------ positives: dev, data
    def t34_github(self) -> str:
        return self.t34_util_crc_token(self.pick(["ghp", "ghp", "gho"]))

    def t34_gitlab(self) -> str:
        return "glpat-" + self.s(20, URLSAFE)

    def t34_npm(self) -> str:
        return self.t34_util_crc_token("npm")

    def t34_vault_token(self) -> str:
        if self.rng.randrange(2):
            return "hvs." + self.s(24, ALNUM)
        return "hvs.CAESI" + self.s(86, URLSAFE)

    def t34_confluent_jaas(self) -> str:
        key = self.s(16, UPNUM)
        secret = self.s(64, ALNUM + "+/")
        return (
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'username="{key}" password="{secret}";'
        )

    def t34_datadog_key(self) -> str:
        return self.s(32, HEX)

    def t34_zendesk_token(self) -> str:
        return self.s(40, ALNUM)

    def t34_freshdesk_key(self) -> str:
        return self.s(20, ALNUM)

    def t34_jwt_secret(self) -> str:
        shape = self.rng.randrange(3)
        if shape == 0:
            return self.s(64, ALNUM)
        if shape == 1:
            return self.t34_util_b64(48)
        return self.s(64, HEX)

    def t34_hmac_secret(self) -> str:
        return self.pick([self.s(40, ALNUM), self.s(64, HEX), "whsec_" + self.s(32, ALNUM)])

    def t34_fernet(self) -> str:
        return self.t34_util_b64(32, urlsafe=True)

    def t34_django_key(self) -> str:
        return self.s(50, LOWNUM + "!@#%^&*(-_=+)")

    def t34_openai(self) -> str:
        return f"sk-proj-{self.s(58, URLSAFE)}T3BlbkFJ{self.s(58, URLSAFE)}"

    def t34_session_jwt(self) -> str:
        def part(obj: dict[str, object]) -> str:
            raw = json.dumps(obj, separators=(",", ":")).encode()
            return base64.urlsafe_b64encode(raw).decode().rstrip("=")

        head = part({"alg": "HS256", "typ": "JWT"})
        body = part(
            {
                "sub": self.pick(["drv_", "rdr_", "agt_"]) + self.s(10, DIGITS),
                "role": self.pick(["driver", "rider", "ops_admin", "cs_agent"]),
                "cty": self.pick(["ID", "VN", "TR"]),
                "iat": 1717000000 + self.rng.randrange(10**7),
                "exp": 1737000000 + self.rng.randrange(10**7),
            }
        )
        return f"{head}.{body}.{self.t34_util_b64(32, urlsafe=True, pad=False)}"

    # ------------------------------------------------------------------ negatives: placeholders
    def t34_ph_id(self) -> str:
        return self.pick(
            [
                "<isi-dengan-kata-sandi>",
                "GANTI_DENGAN_SERVER_KEY",
                "isi_sendiri",
                "<kunci-rahasia-anda>",
                "${KATA_SANDI_DB}",
                "RAHASIA_JANGAN_DIISI_DI_SINI",
                "xxxxxxxxxxxxxxxx",
                "<minta-ke-tim-payments>",
                "",
                "-",
            ]
        )

    def t34_ph_vi(self) -> str:
        return self.pick(
            [
                "<mật-khẩu-của-bạn>",
                "THAY_BANG_KHOA_BI_MAT",
                "<điền-secret-key>",
                "******",
                "${VNPAY_HASH_SECRET}",
                "<liên-hệ-team-thanh-toán>",
                "KHONG_COMMIT_KHOA_THAT",
                "<khóa-api>",
            ]
        )

    def t34_ph_tr(self) -> str:
        return self.pick(
            [
                "<şifreniz>",
                "BURAYA_API_ANAHTARI",
                "<gizli-anahtar>",
                "${IYZICO_SECRET_KEY}",
                "DEGISTIR_BENI",
                "********",
                "<ödeme-ekibinden-alın>",
                "sifre_buraya",
            ]
        )

    def t34_ph_en(self) -> str:
        return self.pick(
            [
                "<your-server-key>",
                "changeme",
                "REPLACE_ME",
                "${SECRET}",
                "<redacted>",
                "your-api-key-here",
                "TODO: pull from vault",
                "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx",
                "<password>",
                "...",
            ]
        )

    def t34_redacted(self) -> str:
        return self.pick(
            [
                "[DISENSOR]",
                "[DIHAPUS]",
                "[ĐÃ ẨN]",
                "[ĐÃ XÓA]",
                "[GİZLENDİ]",
                "[SİLİNDİ]",
                "[REDACTED]",
                "********",
                "xnd_production_****",
                "Mid-server-****************",
                "<removed by @secops>",
                "•••••••••",
            ]
        )

    def t34_fake_token(self) -> str:
        shape = self.rng.randrange(5)
        word = self.pick(["fake", "dummy", "test", "mock", "notreal"])
        if shape == 0:
            return f"{word}-{self.pick(['xendit', 'midtrans', 'momo', 'iyzico'])}-key-{self.s(4, DIGITS)}"
        if shape == 1:
            return f"{word}_secret_do_not_use"
        if shape == 2:
            return f"test-only-{self.pick(self.words)}-{word}"
        if shape == 3:
            return "FAKE" + "0" * self.rng.randrange(12, 28)
        return f"unit-test-{word}-token"

    def t34_doc_pw(self) -> str:
        return self.pick(["password", "secret", "example", "changeme", "postgres", "dispatch"])

    def t34_aws_example_pair(self) -> str:
        return (
            "aws_access_key_id = AKIAIOSFODNN7EXAMPLE\n"
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
        )

    def t34_slack_sample_webhook(self) -> str:
        return self.pick(
            [
                "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
                "https://hooks.slack.com/services/TXXXXXXXX/BXXXXXXXX/XXXXXXXXXXXXXXXXXXXXXXXX",
                "https://hooks.slack.com/services/<team>/<channel>/<token>",
            ]
        )

    # ------------------------------------------------------------------ negatives: UI text
    def t34_i18n_id(self) -> str:
        return self.pick(
            [
                "Kata sandi salah, silakan coba lagi",
                "Kata sandi minimal 8 karakter",
                "Lupa kata sandi?",
                "Masukkan kode OTP yang dikirim ke nomor Anda",
                "Kata sandi tidak cocok",
                "Sesi Anda telah berakhir, silakan masuk kembali",
                "Token tidak valid atau sudah kedaluwarsa",
            ]
        )

    def t34_i18n_vi(self) -> str:
        return self.pick(
            [
                "Mật khẩu không đúng, vui lòng thử lại",
                "Mật khẩu phải có ít nhất 8 ký tự",
                "Quên mật khẩu?",
                "Nhập mã OTP đã gửi đến số điện thoại của bạn",
                "Mật khẩu xác nhận không khớp",
                "Phiên đăng nhập đã hết hạn",
                "Mã xác thực không hợp lệ",
            ]
        )

    def t34_i18n_tr(self) -> str:
        return self.pick(
            [
                "Şifre hatalı, lütfen tekrar deneyin",
                "Şifreniz en az 8 karakter olmalıdır",
                "Şifremi unuttum",
                "Telefonunuza gönderilen doğrulama kodunu girin",
                "Şifreler eşleşmiyor",
                "Oturumunuzun süresi doldu",
                "Geçersiz veya süresi dolmuş anahtar",
            ]
        )

    def t34_error_code(self) -> str:
        return self.pick(
            [
                "AUTH_" + self.s(3, DIGITS),
                "PAY-" + self.s(4, DIGITS),
                "ERR_INVALID_PASSWORD",
                "ERR_TOKEN_EXPIRED",
                "E" + self.s(5, DIGITS),
                "invalid_signature",
            ]
        )

    # ------------------------------------------------------------------ negatives: hashes
    def t34_bcrypt(self) -> str:
        return f"$2{self.pick(['a', 'b', 'y'])}$1{self.pick(['0', '2'])}$" + self.s(53, CRYPT64)

    def t34_pbkdf2(self) -> str:
        return f"pbkdf2_sha256$720000${self.s(22, ALNUM)}${self.t34_util_b64(32)}"

    def t34_argon2(self) -> str:
        salt = self.t34_util_b64(16, pad=False)
        return f"$argon2id$v=19$m=19456,t=2,p=1${salt}${self.t34_util_b64(32, pad=False)}"

    def t34_scram(self) -> str:
        return (
            f"SCRAM-SHA-256$4096:{self.t34_util_b64(16)}$"
            f"{self.t34_util_b64(32)}:{self.t34_util_b64(32)}"
        )

    def t34_apr1(self) -> str:
        return f"$apr1${self.s(8, CRYPT64)}${self.s(22, CRYPT64)}"

    def t34_sha512crypt(self) -> str:
        return f"$6${self.s(16, CRYPT64)}${self.s(86, CRYPT64)}"

    def t34_pg_md5(self) -> str:
        return "md5" + hashlib.md5(self.rng.randbytes(12)).hexdigest()

    def t34_sha512_sig(self) -> str:
        return hashlib.sha512(self.rng.randbytes(24)).hexdigest()

    def t34_hmac_sig(self) -> str:
        return hashlib.sha256(self.rng.randbytes(24)).hexdigest()

    def t34_sha256(self) -> str:
        return hashlib.sha256(self.rng.randbytes(32)).hexdigest()

    def t34_image_digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.rng.randbytes(32)).hexdigest()

    def t34_sri(self) -> str:
        return "sha512-" + self.t34_util_b64(64)

    def t34_gosum(self) -> str:
        return "h1:" + self.t34_util_b64(32)

    def t34_git_sha(self) -> str:
        return self.s(40, HEX)

    # ------------------------------------------------------------------ negatives: public material
    def t34_midtrans_client(self) -> str:
        return self.pick(["Mid-client-", "SB-Mid-client-"]) + self.s(16, URLSAFE)

    def t34_xendit_public(self) -> str:
        env = self.pick(["production", "development"])
        return f"xnd_public_{env}_" + self.s(52, ALNUM)

    def t34_mapbox_pk(self) -> str:
        payload = json.dumps(
            {"u": self.pick(["rantau", "rantau-maps", "rantauvn"]), "a": self.s(25, LOWNUM)},
            separators=(",", ":"),
        )
        head = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
        return f"pk.{head}.{self.s(22, URLSAFE)}"

    def t34_twilio_sid(self) -> str:
        return "AC" + self.s(32, HEX)

    def t34_public_pem(self) -> str:
        der = b"\x30\x82\x01\x22\x30\x0d\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01\x05\x00"
        return self.t34_util_armor("PUBLIC KEY", der + self.rng.randbytes(275))

    def t34_cert(self) -> str:
        der = b"\x30\x82\x03\x8a\x30\x82\x02\x72\xa0\x03\x02\x01\x02\x02\x14"
        return self.t34_util_armor("CERTIFICATE", der + self.rng.randbytes(890))

    def t34_ssh_pub(self) -> str:
        if self.rng.randrange(2):
            body = base64.b64encode(
                b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + self.rng.randbytes(32)
            ).decode()
            kind = "ssh-ed25519"
        else:
            body = base64.b64encode(
                b"\x00\x00\x00\x07ssh-rsa\x00\x00\x00\x03\x01\x00\x01\x00\x00\x01\x01"
                + self.rng.randbytes(257)
            ).decode()
            kind = "ssh-rsa"
        who = self.pick(["andi", "linh.nguyen", "mehmet.k", "ci-deploy", "putri", "tuan"])
        return f"{kind} {body} {who}@rantau"

    def t34_apns_key_id(self) -> str:
        return self.s(10, UPNUM)

    def t34_firebase_app_id(self) -> str:
        plat = self.pick(["android", "ios", "web"])
        return f"1:{self.s(12, DIGITS)}:{plat}:{self.s(16 if plat != 'web' else 22, HEX)}"

    def t34_google_client_id(self) -> str:
        return f"{self.s(12, DIGITS)}-{self.s(32, LOWNUM)}.apps.googleusercontent.com"

    def t34_age_public(self) -> str:
        return "age1" + self.s(58, "qpzry9x8gf2tvdw0s3jn54khce6mua7l")

    def t34_gpg_fpr(self) -> str:
        return self.s(40, HEXU)

    # ------------------------------------------------------------------ negatives: encrypted at rest
    def t34_sops(self) -> str:
        data = self.t34_util_b64(self.rng.randrange(14, 46))
        return (
            f"ENC[AES256_GCM,data:{data},iv:{self.t34_util_b64(32)},"
            f"tag:{self.t34_util_b64(16)},type:str]"
        )

    def t34_sealed(self) -> str:
        return "AgB" + self.t34_util_b64(self.rng.choice([420, 450, 480]))

    def t34_ansible_vault(self) -> str:
        body = self.s(80 * 5, HEX)
        rows = [body[i : i + 80] for i in range(0, len(body), 80)]
        return "$ANSIBLE_VAULT;1.1;AES256\n" + "\n".join(rows)

    def t34_jasypt(self) -> str:
        return f"ENC({self.t34_util_b64(self.rng.choice([32, 48]))})"

    def t34_kms_blob(self) -> str:
        return "AQICAHh" + self.t34_util_b64(self.rng.choice([150, 180, 210]))

    def t34_vault_transit(self) -> str:
        return f"vault:v{self.rng.randrange(1, 4)}:" + self.t34_util_b64(
            self.rng.choice([28, 40, 56])
        )

    def t34_encrypted_pem(self) -> str:
        der = b"\x30\x82\x05\x0e\x30\x40\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x05\x0d"
        return self.t34_util_armor("ENCRYPTED PRIVATE KEY", der + self.rng.randbytes(1280))

    # ------------------------------------------------------------------ negatives: references
    def t34_py_ref(self) -> str:
        return self.pick(
            [
                'os.environ["MIDTRANS_SERVER_KEY"]',
                'os.getenv("XENDIT_SECRET_KEY")',
                'settings.VNPAY["HASH_SECRET"]',
                'secrets_client.get_secret("prod/payments/momo")["secret_key"]',
                'config("TWILIO_AUTH_TOKEN")',
                'env.str("DATABASE_PASSWORD")',
            ]
        )

    def t34_nb_ref(self) -> str:
        # Python source as it sits inside a notebook's JSON string (quotes escaped).
        return self.pick(
            [
                'os.environ[\\"DWH_READER_PASSWORD\\"]',
                "os.getenv('PG_REPLICA_PASSWORD')",
                "getpass.getpass('Kata sandi dwh_reader: ')",
                "keyring.get_password('pg-dispatch-ro', 'dwh_reader')",
            ]
        )

    def t34_js_ref(self) -> str:
        return self.pick(
            [
                "process.env.XENDIT_SECRET_KEY",
                "process.env['MIDTRANS_SERVER_KEY']",
                "config.get('payments.momo.secretKey')",
                "await getSecret('prod/notif/onesignal')",
                "process.env.FCM_SERVER_KEY ?? ''",
                "env.VONAGE_API_SECRET",
            ]
        )

    def t34_go_ref(self) -> str:
        return self.pick(
            [
                'os.Getenv("ZALOPAY_KEY1")',
                'os.Getenv("ZALOPAY_KEY2")',
                "cfg.Payment.ZaloPay.Key1",
                'viper.GetString("zalopay.key2")',
                'mustEnv("MQTT_PASSWORD")',
                'secrets.MustGet(ctx, "dispatch/db")',
            ]
        )

    def t34_spring_ref(self) -> str:
        return self.pick(
            [
                "${XENDIT_SECRET_KEY}",
                "${IYZICO_SECRET_KEY:}",
                "${vault.payments.iyzico.secret}",
                "${sm://projects/rantau-prod/secrets/paytr-merchant-key}",
                "${PAYTR_MERCHANT_SALT}",
            ]
        )

    def t34_kt_ref(self) -> str:
        return self.pick(
            [
                "BuildConfig.INFOBIP_API_KEY",
                'System.getenv("INFOBIP_API_KEY")',
                "properties.infobip.apiKey",
                'env.getRequiredProperty("infobip.api-key")',
                "secretProvider.get(SecretId.INFOBIP)",
            ]
        )

    def t34_php_ref(self) -> str:
        return self.pick(
            [
                "env('MOMO_SECRET_KEY')",
                "config('services.momo.secret_key')",
                "getenv('PAYTR_MERCHANT_KEY')",
                "$_ENV['PAYTR_MERCHANT_SALT']",
                "env('MIDTRANS_SERVER_KEY', '')",
            ]
        )

    def t34_rb_ref(self) -> str:
        return self.pick(
            [
                'ENV.fetch("ZENDESK_API_TOKEN")',
                "Rails.application.credentials.dig(:zendesk, :token)",
                'ENV["ONESIGNAL_REST_API_KEY"]',
                "Rails.application.credentials.onesignal_api_key",
            ]
        )

    def t34_cs_ref(self) -> str:
        return self.pick(
            [
                'Configuration["Esms:SecretKey"]',
                'Environment.GetEnvironmentVariable("WMS_DB_PASSWORD")',
                "_options.Value.SecretKey",
                'await secretClient.GetSecretAsync("wms-db-password")',
            ]
        )

    def t34_dart_ref(self) -> str:
        return self.pick(
            [
                "const String.fromEnvironment('HERE_API_KEY')",
                "dotenv.env['HERE_API_KEY']!",
                "Env.hereApiKey",
                "await remoteConfig.getString('maps_key_android')",
            ]
        )

    def t34_swift_ref(self) -> str:
        return self.pick(
            [
                'Bundle.main.object(forInfoDictionaryKey: "STAGING_BASIC_AUTH") as? String ?? ""',
                'ProcessInfo.processInfo.environment["STAGING_BASIC_AUTH"] ?? ""',
                "Secrets.stagingBasicAuth",
                'try keychain.get("staging_basic_auth") ?? ""',
            ]
        )

    def t34_sh_ref(self) -> str:
        return self.pick(
            [
                '"$(vault kv get -field=password secret/dwh/clickhouse)"',
                '"$(aws secretsmanager get-secret-value --secret-id prod/dispatch/db --query SecretString --output text | jq -r .password)"',
                '"${PGPASSWORD:?set PGPASSWORD}"',
                '"$(cat /run/secrets/redis_password)"',
                '"$(gcloud secrets versions access latest --secret=netgsm-password)"',
            ]
        )

    def t34_ps_ref(self) -> str:
        return self.pick(
            [
                "(Get-Secret -Name WmsScannerWifi -AsPlainText)",
                "$env:WMS_SQL_PASSWORD",
                "(Read-Host -AsSecureString 'Kata sandi')",
                "$cred.GetNetworkCredential().Password",
                "(Get-AzKeyVaultSecret -VaultName kv-rnt-wms -Name sql-pass -AsPlainText)",
            ]
        )

    def t34_tf_ref(self) -> str:
        return self.pick(
            [
                "var.db_password",
                "random_password.dispatch_db.result",
                "data.aws_secretsmanager_secret_version.redis.secret_string",
                "data.alicloud_kms_secret_versions.rds.versions[0].secret_data",
                "sensitive(var.alicloud_secret_key)",
            ]
        )

    def t34_helm_ref(self) -> str:
        return self.pick(
            [
                "{{ .Values.redis.auth.password | quote }}",
                '{{ required "kafka.sasl.password wajib diisi" .Values.kafka.sasl.password }}',
                "{{ .Values.secrets.jwtSecret | b64enc }}",
                '{{ include "dispatch.dbPassword" . }}',
            ]
        )

    def t34_ci_ref(self) -> str:
        return self.pick(
            [
                "${{ secrets.KEYSTORE_PASSWORD }}",
                "${{ secrets.KEY_PASSWORD }}",
                "${{ secrets.UPLOAD_KEYSTORE_PASSWORD }}",
                "${{ vars.KEYSTORE_PASSWORD_REF }}",
                "${{ steps.vault.outputs.keystore_password }}",
            ]
        )

    def t34_gl_ref(self) -> str:
        return self.pick(
            [
                "$CI_REGISTRY_PASSWORD",
                "$CI_JOB_TOKEN",
                "${SONAR_TOKEN}",
                "$NEXUS_DEPLOY_PASSWORD",
                "${HARBOR_ROBOT_SECRET}",
            ]
        )

    def t34_k8s_secret_name(self) -> str:
        return self.pick(
            [
                "dispatch-db-credentials",
                "payments-gateway-keys",
                "redis-auth",
                "kafka-sasl",
                "notif-provider-tokens",
                "regcred-ghcr",
            ]
        )

    def t34_sm_path(self) -> str:
        return self.pick(
            [
                "prod/payments/midtrans",
                "prod/payments/xendit",
                "vn-prod/payments/vnpay",
                "tr-prod/payments/iyzico",
                "prod/notif/fcm",
                "projects/rantau-prod/secrets/momo-secret-key/versions/latest",
            ]
        )

    def t34_kv_ref(self) -> str:
        return self.pick(
            [
                "@Microsoft.KeyVault(SecretUri=https://kv-rnt-wms.vault.azure.net/secrets/sql-password/)",
                "@Microsoft.KeyVault(VaultName=kv-rnt-wms;SecretName=esms-secret-key)",
                "#{WmsSqlPassword}#",
            ]
        )

    def t34_jenkins_cred_id(self) -> str:
        return self.pick(
            ["nexus-deploy", "playstore-upload-key", "gcr-json-key", "ssh-bastion-jkt", "sonar"]
        )

    def t34_dbx_ref(self) -> str:
        return self.pick(
            [
                'dbutils.secrets.get(scope = "dwh", key = "clickhouse-password")',
                'dbutils.secrets.get("dwh", "pg-replica-password")',
                'sys.env("CLICKHOUSE_PASSWORD")',
                'spark.conf.get("spark.rantau.ch.password")',
            ]
        )

    def t34_dbt_ref(self) -> str:
        return self.pick(
            [
                "\"{{ env_var('DBT_SNOWFLAKE_PASSWORD') }}\"",
                "\"{{ env_var('DBT_PG_PASSWORD') }}\"",
                "\"{{ env_var('DBT_KEY_PASSPHRASE', '') }}\"",
            ]
        )

    def t34_airflow_ref(self) -> str:
        return self.pick(
            [
                'Variable.get("zendesk_api_token")',
                'BaseHook.get_connection("clickhouse_dwh").password',
                '"{{ var.value.freshdesk_api_key }}"',
                '"{{ conn.pg_replica.password }}"',
            ]
        )

    def t34_kafka_ref(self) -> str:
        return self.pick(
            [
                "${file:/opt/kafka/secrets/confluent.properties:sasl.password}",
                "${env:CONFLUENT_API_SECRET}",
                "${directory:/mnt/secrets:confluent-secret}",
            ]
        )

    def t34_postman_var(self) -> str:
        return self.pick(
            [
                "{{midtrans_server_key}}",
                "{{xendit_secret_key}}",
                "{{access_token}}",
                "{{basic_auth}}",
                "{{zalopay_key1}}",
            ]
        )

    # ------------------------------------------------------------------ negatives: identifiers
    def t34_uuid(self) -> str:
        return self.t34_util_uuid()

    def t34_imei(self) -> str:
        return self.t34_util_luhn(self.pick(["35", "86", "35", "01"]) + self.s(12, DIGITS))

    def t34_iccid(self) -> str:
        country = self.pick(["8962", "8984", "8990"])
        return self.t34_util_luhn(country + self.s(14, DIGITS))

    def t34_vin(self) -> str:
        return self.pick(["MHK", "MH1", "RLH", "NM0", "MHF"]) + self.s(14, VIN_CHARS)

    def t34_order_id(self) -> str:
        prefix = self.pick(["RNT-ID-", "RNT-VN-", "RNT-TR-", "ORD", "TRIP-"])
        return prefix + self.s(4, DIGITS) + self.s(8, UPNUM)

    def t34_object_id(self) -> str:
        return self.s(24, HEX)

    def t34_serial(self) -> str:
        return self.pick(["S", "2"]) + self.s(2, DIGITS) + self.s(3, UPNUM) + self.s(8, DIGITS)

    def t34_plate(self) -> str:
        shape = self.rng.randrange(3)
        if shape == 0:
            area = self.pick(["B", "D", "L", "AB", "F"])
            letters = self.s(self.rng.randrange(2, 4), string.ascii_uppercase)
            return f"{area} {self.rng.randrange(1000, 9999)} {letters}"
        if shape == 1:
            return f"{self.pick(['51', '29', '30', '59'])}{self.s(1, 'ABCDEFGHK')}-{self.s(3, DIGITS)}.{self.s(2, DIGITS)}"
        return f"34 {self.s(self.rng.randrange(1, 4), 'ABCDEFGHJKLMNPRSTUVYZ')} {self.s(3, DIGITS)}"

    # ------------------------------------------------------------------ negatives: settings
    def t34_policy_num(self) -> str:
        return self.pick(["8", "10", "12", "16", "90", "5", "3"])

    def t34_duration(self) -> str:
        return self.pick(["15m", "1h", "24h", "720h", "3600", "86400", "30d"])

    def t34_grant_type(self) -> str:
        return self.pick(["password", "client_credentials", "authorization_code", "refresh_token"])

    def t34_header_name(self) -> str:
        return self.pick(
            ["X-Callback-Token", "Authorization", "X-Api-Key", "X-Signature", "x-momo-signature"]
        )

    def t34_secret_path(self) -> str:
        return self.pick(
            [
                "/run/secrets/db_password",
                "/etc/rantau/secrets/midtrans.key",
                "/vault/secrets/dispatch-db",
                "./secrets/clickhouse.pass",
                "C:\\ProgramData\\Rantau\\wms\\sql.pass",
            ]
        )

    def t34_nvs_key(self) -> str:
        return self.pick(["mqtt_pw", "mqtt_user", "ota_tok", "apn_pass", "wifi_psk"])

    def t34_png_b64(self) -> str:
        return base64.b64encode(
            b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + self.rng.randbytes(120)
        ).decode()


VALUES = Tune34Values


POSITIVE: list[evalset.Template] = [
    (
        "payments/midtrans-adapter/.env.production",
        """# Midtrans Core API — akun produksi (PT Rantau Mobilitas Nusantara)
# Dipakai oleh payments-midtrans-adapter, lihat runbook PAY-ID-004
APP_ENV=production
APP_PORT=8080
MIDTRANS_IS_PRODUCTION=true
MIDTRANS_MERCHANT_ID=G812345678
# server key untuk merchant RantauRide (GoPay, QRIS, VA)
MIDTRANS_SERVER_KEY={V}
# server key untuk merchant RantauKirim (COD settlement, VA)
MIDTRANS_SERVER_KEY_KIRIM={V2}
MIDTRANS_NOTIFICATION_URL=https://pay.rantau.co.id/hooks/midtrans
DB_HOST=pg-payments.id.internal
DB_NAME=payments
LOG_LEVEL=info
""",
        "t34_midtrans_server",
        True,
    ),
    (
        "payments/xendit-service/src/main/resources/application-prod.yml",
        """spring:
  application:
    name: xendit-service
  datasource:
    url: jdbc:postgresql://pg-payments.id.internal:5432/payments
    username: payments
    password: ${DB_PASSWORD}

rantau:
  payments:
    xendit:
      base-url: https://api.xendit.co
      secret-key: {V}
      # disbursement ke rekening driver pakai akun sub-account terpisah
      disbursement-secret-key: {V2}
      callback-path: /hooks/xendit
      retry:
        max-attempts: 3
        backoff: 2s

management:
  endpoints:
    web:
      exposure:
        include: health,info,prometheus
""",
        "t34_xendit_secret",
        True,
    ),
    (
        "payments/payout-worker/src/clients/xendit.ts",
        """import { Xendit } from 'xendit-node';
import { logger } from '../logger';

// TODO(ops): move to secrets manager before go-live (PAY-ID-212)
const xendit = new Xendit({
  secretKey: '{V}',
});

export const { Disbursement, Balance } = xendit;

export async function driverPayout(driverId: string, amount: number, bank: BankAccount) {
  logger.info({ driverId, amount }, 'creating disbursement');
  return Disbursement.create({
    externalID: `payout-${driverId}-${Date.now()}`,
    bankCode: bank.code,
    accountHolderName: bank.holder,
    accountNumber: bank.number,
    description: 'Pencairan saldo mitra Rantau',
    amount,
  });
}
""",
        "t34_xendit_secret",
        True,
    ),
    (
        "payments/laravel-gateway/app/Http/Controllers/XenditCallbackController.php",
        """<?php

namespace App\\Http\\Controllers;

use Illuminate\\Http\\Request;
use Illuminate\\Support\\Facades\\Log;

class XenditCallbackController extends Controller
{
    // token verifikasi callback dari dashboard Xendit (Settings > Callbacks)
    private const CALLBACK_TOKEN = '{V}';

    public function invoicePaid(Request $request)
    {
        if ($request->header('x-callback-token') !== self::CALLBACK_TOKEN) {
            Log::warning('xendit callback ditolak', ['ip' => $request->ip()]);
            return response()->json(['message' => 'unauthorized'], 401);
        }

        $invoice = $request->all();
        dispatch(new \\App\\Jobs\\MarkInvoicePaid($invoice['external_id'], $invoice['paid_amount']));

        return response()->json(['received' => true]);
    }
}
""",
        "t34_xendit_callback",
        True,
    ),
    (
        "payments/vn-momo/config/momo.php",
        """<?php

return [
    'endpoint'     => 'https://payment.momo.vn/v2/gateway/api/create',
    'partner_code' => env('MOMO_PARTNER_CODE', 'RANTAUVN'),
    'access_key'   => env('MOMO_ACCESS_KEY'),
    // secret key lấy từ business.momo.vn — chị Linh gửi qua Zalo ngày 12/03
    'secret_key'   => '{V}',
    'redirect_url' => 'https://rantau.vn/thanh-toan/ket-qua',
    'ipn_url'      => 'https://pay.rantau.vn/hooks/momo',
    'request_type' => 'captureWallet',
    'lang'         => 'vi',
];
""",
        "t34_momo_secret",
        True,
    ),
    (
        "payments/vn-checkout/checkout/settings/production.py",
        """from .base import *  # noqa: F403

DEBUG = False
ALLOWED_HOSTS = ["checkout.rantau.vn", "pay.rantau.vn"]

VNPAY = {
    "TMN_CODE": "RANTAUV1",
    "HASH_SECRET": "{V}",
    "PAYMENT_URL": "https://pay.vnpay.vn/vpcpay.html",
    "RETURN_URL": "https://checkout.rantau.vn/vnpay/return",
    "VERSION": "2.1.0",
    "LOCALE": "vn",
}

# merchant phụ cho dịch vụ giao hàng (RantauGiao)
VNPAY_GIAO = {**VNPAY, "TMN_CODE": "RANTAUG2", "HASH_SECRET": "{V2}"}

CELERY_BROKER_URL = env("CELERY_BROKER_URL")  # noqa: F405
""",
        "t34_vnpay_secret",
        True,
    ),
    (
        "payments/vn-zalopay/internal/zalopay/config.go",
        """package zalopay

import "time"

// Config for the ZaloPay merchant "Rantau Việt Nam" (app_id 2553).
type Config struct {
	AppID    int
	Key1     string // signs create-order requests
	Key2     string // verifies callbacks
	Endpoint string
	Timeout  time.Duration
}

var Production = Config{
	AppID:    2553,
	Key1:     "{V}",
	Key2:     "{V2}",
	Endpoint: "https://openapi.zalopay.vn/v2",
	Timeout:  10 * time.Second,
}
""",
        "t34_zalopay_key",
        True,
    ),
    (
        "payments/tr-iyzico/src/main/java/com/rantau/tr/payments/IyzicoConfig.java",
        """package com.rantau.tr.payments;

import com.iyzipay.Options;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;

@Configuration
public class IyzicoConfig {

    // Canlı ortam anahtarları (merchant panelinden alındı, 2024-02)
    @Bean
    public Options iyzicoOptions() {
        Options options = new Options();
        options.setApiKey("{V}");
        options.setSecretKey("{V2}");
        options.setBaseUrl("https://api.iyzipay.com");
        return options;
    }
}
""",
        "t34_iyzico_key",
        True,
    ),
    (
        "payments/tr-paytr/odeme/paytr_token.php",
        """<?php
// PayTR iFrame API - token oluşturma (Rantau Lojistik kurye ödemeleri)
$merchant_id   = '318452';
$merchant_key  = '{V}';
$merchant_salt = '{V2}';

$email          = $_POST['email'];
$payment_amount = (int) round($_POST['tutar'] * 100);
$merchant_oid   = 'RNTTR' . time();
$user_basket    = base64_encode(json_encode([['Kurye teslimat', $_POST['tutar'], 1]]));
$no_installment = 0;
$max_installment = 0;
$currency = 'TL';
$test_mode = 0;

$hash_str = $merchant_id . $_SERVER['REMOTE_ADDR'] . $merchant_oid . $email . $payment_amount
    . $user_basket . $no_installment . $max_installment . $currency . $test_mode;
$paytr_token = base64_encode(hash_hmac('sha256', $hash_str . $merchant_salt, $merchant_key, true));
""",
        "t34_paytr_key",
        True,
    ),
    (
        "notif/sms-router/sms_router/providers/twilio_provider.py",
        """import os

from twilio.rest import Client

from .base import SmsProvider

# Twilio is only the fallback route for +90 numbers when Netgsm is degraded.
TWILIO_ACCOUNT_SID = os.environ.get("TWILIO_ACCOUNT_SID", "")
TWILIO_AUTH_TOKEN = os.environ.get("TWILIO_AUTH_TOKEN", "{V}")
TWILIO_FROM = "+19035550143"


class TwilioProvider(SmsProvider):
    name = "twilio"

    def __init__(self) -> None:
        self.client = Client(TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN)

    def send(self, to: str, body: str) -> str:
        msg = self.client.messages.create(to=to, from_=TWILIO_FROM, body=body)
        return msg.sid
""",
        "t34_twilio_token",
        True,
    ),
    (
        "docs/runbooks/notif/sms-fallback.md",
        """# Runbook: SMS fallback to Twilio

When the Netgsm dashboard shows degraded delivery for +90 numbers, switch the
`sms-router` route for TR to Twilio and verify with a manual send:

```bash
curl -X POST "https://api.twilio.com/2010-04-01/Accounts/$SID/Messages.json" \\
  --data-urlencode "To=+905321234567" \\
  --data-urlencode "From=+19035550143" \\
  --data-urlencode "Body=Rantau test" \\
  -u "{V}"
```

Then flip the flag:

```bash
kubectl -n notif set env deploy/sms-router ROUTE_TR=twilio
```

Remember to flip it back when Netgsm recovers (check their status page).
""",
        "t34_twilio_basic",
        True,
    ),
    (
        "notif/otp-service/src/providers/vonage.js",
        """const { Vonage } = require('@vonage/server-sdk');

// VN OTP route (Viettel / Mobifone), sender id "RANTAU"
const vonage = new Vonage({
  apiKey: process.env.VONAGE_API_KEY,
  apiSecret: '{V}',
});

async function sendOtp(phone, code) {
  const text = `Ma xac thuc Rantau cua ban la ${code}. Khong chia se ma nay.`;
  const resp = await vonage.sms.send({ to: phone, from: 'RANTAU', text });
  return resp.messages[0]['message-id'];
}

module.exports = { sendOtp };
""",
        "t34_vonage_secret",
        True,
    ),
    (
        "notif/sms-gateway/src/main/kotlin/com/rantau/notif/infobip/InfobipClient.kt",
        """package com.rantau.notif.infobip

import okhttp3.MediaType.Companion.toMediaType
import okhttp3.OkHttpClient
import okhttp3.Request
import okhttp3.RequestBody.Companion.toRequestBody

class InfobipClient(
    private val http: OkHttpClient,
    private val baseUrl: String = "https://9rk8zp.api.infobip.com",
    private val apiKey: String = "{V}",
) {
    fun sendSms(to: String, text: String): String {
        val body = \"\"\"{"messages":[{"destinations":[{"to":"$to"}],"from":"RANTAU","text":"$text"}]}\"\"\"
        val req = Request.Builder()
            .url("$baseUrl/sms/2/text/advanced")
            .header("Authorization", "App $apiKey")
            .post(body.toRequestBody("application/json".toMediaType()))
            .build()
        http.newCall(req).execute().use { return it.body!!.string() }
    }
}
""",
        "t34_infobip_key",
        True,
    ),
    (
        "notif/scripts/netgsm_toplu_sms.sh",
        """#!/usr/bin/env bash
# Netgsm toplu SMS - kurye bilgilendirme (Istanbul bölge operasyonu)
set -euo pipefail

USERCODE="8502421234"
PASSWORD="{V}"
HEADER="RANTAU"
MESAJ="${1:?mesaj metni gerekli}"

while read -r telefon; do
  curl -s "https://api.netgsm.com.tr/sms/send/get" \\
    --data-urlencode "usercode=${USERCODE}" \\
    --data-urlencode "password=${PASSWORD}" \\
    --data-urlencode "gsmno=${telefon}" \\
    --data-urlencode "message=${MESAJ}" \\
    --data-urlencode "msgheader=${HEADER}"
  echo
done < kuryeler.txt
""",
        "t34_pw",
        True,
    ),
    (
        "notif/vn-sms/Rantau.Notif.VnSms/appsettings.Production.json",
        """{
  "Logging": {
    "LogLevel": { "Default": "Information", "Microsoft.AspNetCore": "Warning" }
  },
  "Esms": {
    "BaseUrl": "https://rest.esms.vn/MainService.svc/json",
    "ApiKey": "{V}",
    "SecretKey": "{V2}",
    "Brandname": "RANTAU",
    "SmsType": 2
  },
  "AllowedHosts": "*"
}
""",
        "t34_esms_key",
        True,
    ),
    (
        "notif/push-service/internal/fcm/legacy.go",
        """package fcm

import (
	"bytes"
	"encoding/json"
	"net/http"
)

// legacyServerKey is the old FCM server key for the driver app (project rantau-driver).
// Still used by the v1 push path until the HTTP v1 migration finishes.
const legacyServerKey = "{V}"

func SendLegacy(token string, data map[string]string) (*http.Response, error) {
	payload, _ := json.Marshal(map[string]any{"to": token, "data": data, "priority": "high"})
	req, _ := http.NewRequest(http.MethodPost, "https://fcm.googleapis.com/fcm/send", bytes.NewReader(payload))
	req.Header.Set("Authorization", "key="+legacyServerKey)
	req.Header.Set("Content-Type", "application/json")
	return http.DefaultClient.Do(req)
}
""",
        "t34_fcm_key",
        True,
    ),
    (
        "support/admin/config/initializers/onesignal.rb",
        """# Push notifications to riders from the support admin (refund done, ticket replied).
OneSignal.configure do |config|
  config.app_id = "8f2a1c44-6b7e-4b1f-9a0e-3d1f6e2c9b10"
  config.rest_api_key = "{V}"
  config.logger = Rails.logger
end
""",
        "t34_onesignal",
        True,
    ),
    (
        "mobile/rider-ios/fastlane/keys/AuthKey_7QJ4M2K9XD.p8",
        """{V}
""",
        "t34_p8_key",
        True,
    ),
    (
        "notif/push-service/config/huawei-push.properties",
        """# Huawei Push Kit - AppGallery build of the rider app (Indonesia)
huawei.push.app-id=107845123
huawei.push.app-secret={V}
huawei.push.token-url=https://oauth-login.cloud.huawei.com/oauth2/v3/token
huawei.push.send-url=https://push-api.cloud.huawei.com/v1/107845123/messages:send
huawei.push.connect-timeout-ms=3000
""",
        "t34_huawei_secret",
        True,
    ),
    (
        "mobile/rider-ios/.netrc",
        """machine api.mapbox.com
login mapbox
password {V}
""",
        "t34_mapbox_sk",
        True,
    ),
    (
        "mobile/driver-android/gradle.properties",
        """org.gradle.jvmargs=-Xmx4g -Dfile.encoding=UTF-8
android.useAndroidX=true
android.nonTransitiveRClass=true
kotlin.code.style=official
# Mapbox Navigation SDK download token (scope DOWNLOADS:READ)
MAPBOX_DOWNLOADS_TOKEN={V}
""",
        "t34_mapbox_sk",
        True,
    ),
    (
        "maps/geocoder/geocoder/clients/google.py",
        """\"\"\"Server-side reverse geocoding for pickup points (ID/VN fallback when HERE fails).\"\"\"

import googlemaps

_CLIENT = googlemaps.Client(key="{V}", timeout=5, retry_over_query_limit=False)


def reverse(lat: float, lng: float, language: str = "id") -> str | None:
    results = _CLIENT.reverse_geocode((lat, lng), language=language)
    if not results:
        return None
    return results[0]["formatted_address"]
""",
        "t34_google_key",
        True,
    ),
    (
        "mobile/driver_flutter/lib/config/maps_config.dart",
        """/// Konfigurasi peta untuk aplikasi mitra (driver).
class MapsConfig {
  MapsConfig._();

  static const String hereApiKey = '{V}';
  static const String hereApiKeyVn = '{V2}';
  static const double defaultZoom = 15.5;
  static const String tileStyle = 'explore.day';
}
""",
        "t34_here_key",
        True,
    ),
    (
        "data/bq-export/keys/rantau-dwh-export.json",
        """{
  "type": "service_account",
  "project_id": "rantau-dwh",
  "private_key_id": "4c1d7e2f0b8a9c3d5e6f7a8b9c0d1e2f3a4b5c6d",
  "private_key": "{V}",
  "client_email": "bq-export@rantau-dwh.iam.gserviceaccount.com",
  "client_id": "104857392018374659201",
  "auth_uri": "https://accounts.google.com/o/oauth2/auth",
  "token_uri": "https://oauth2.googleapis.com/token",
  "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
  "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/bq-export%40rantau-dwh.iam.gserviceaccount.com",
  "universe_domain": "googleapis.com"
}
""",
        "t34_gcp_pk",
        True,
    ),
    (
        "infra/terraform/alicloud-id/provider.tf",
        """terraform {
  required_providers {
    alicloud = {
      source  = "aliyun/alicloud"
      version = "~> 1.220"
    }
  }
}

# Jakarta region (ap-southeast-5) - OSS buckets for POD photos and KYC documents
provider "alicloud" {
  region     = "ap-southeast-5"
  {IV}
}
""",
        "t34_alicloud_pair",
        True,
    ),
    (
        "ops/laptop-setup/aws/credentials",
        """[default]
region = ap-southeast-1
{V}

[rantau-vn-prod]
region = ap-southeast-1
{V2}
""",
        "t34_aws_ini_pair",
        True,
    ),
    (
        ".github/workflows/deploy-pod-uploader.yml",
        """name: deploy-pod-uploader

on:
  push:
    branches: [main]
    paths: ["services/pod-uploader/**"]

jobs:
  deploy:
    runs-on: ubuntu-latest
    env:
      AWS_REGION: ap-southeast-1
      {IV}
    steps:
      - uses: actions/checkout@v4
      - run: aws s3 sync services/pod-uploader/dist s3://rantau-pod-uploader-prod --delete
      - run: aws cloudfront create-invalidation --distribution-id E2K9R7Q3M1ZT4B --paths "/*"
""",
        "t34_aws_yaml_pair",
        True,
    ),
]

POSITIVE += [
    (
        "platform/local/docker-compose.yml",
        """# Stack lokal untuk tim dispatch & pricing. Jangan dipakai di staging.
services:
  postgres:
    image: postgis/postgis:16-3.4
    environment:
      POSTGRES_USER: dispatch
      POSTGRES_PASSWORD: "{V}"
      POSTGRES_DB: dispatch
    ports: ["5432:5432"]

  redis:
    image: redis:7.2-alpine
    command: ["redis-server", "--requirepass", "{V2}"]

  rabbitmq:
    image: rabbitmq:3.13-management
    environment:
      RABBITMQ_DEFAULT_USER: dispatch
      RABBITMQ_DEFAULT_PASS: "{V3}"
    ports: ["15672:15672"]

  dispatch:
    build: ../../services/dispatch
    depends_on: [postgres, redis, rabbitmq]
    environment:
      DATABASE_URL: postgres://dispatch:{V}@postgres:5432/dispatch?sslmode=disable
      REDIS_URL: redis://:{V2}@redis:6379/0
""",
        "t34_pw",
        True,
    ),
    (
        "deploy/k8s/pricing/secret.yaml",
        """apiVersion: v1
kind: Secret
metadata:
  name: pricing-db
  namespace: pricing
  labels:
    app.kubernetes.io/name: pricing
    team: marketplace
type: Opaque
stringData:
  DATABASE_URL: "postgresql://pricing:{V}@pg-pricing.id.internal:5432/pricing?sslmode=require"
  REPLICA_URL: "postgresql://pricing_ro:{V2}@pg-pricing-ro.id.internal:5432/pricing?sslmode=require"
""",
        "t34_url_pw",
        True,
    ),
    (
        "deploy/helm/dispatch/values-prod-vn.yaml",
        """replicaCount: 6
image:
  repository: asia-southeast1-docker.pkg.dev/rantau-prod/services/dispatch
  tag: "2024.11.3"

env:
  COUNTRY: VN
  TZ: Asia/Ho_Chi_Minh

redis:
  host: redis-dispatch.vn.internal
  auth:
    enabled: true
    password: "{V}"

kafka:
  brokers: b-1.msk-vn.internal:9096,b-2.msk-vn.internal:9096
  sasl:
    mechanism: SCRAM-SHA-512
    username: dispatch-vn
    password: "{V2}"

resources:
  requests: { cpu: 500m, memory: 768Mi }
  limits: { memory: 1Gi }
""",
        "t34_pw",
        True,
    ),
    (
        "data/airflow/.env",
        """AIRFLOW__CORE__EXECUTOR=CeleryExecutor
AIRFLOW__CORE__LOAD_EXAMPLES=False
AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=postgresql+psycopg2://airflow:{V}@pg-airflow.data.internal/airflow
AIRFLOW__CELERY__BROKER_URL=redis://:{V2}@redis-airflow.data.internal:6379/0
AIRFLOW_CONN_CLICKHOUSE_DWH=clickhouse://dwh_etl:{V3}@ch-dwh.data.internal:9000/rantau
AIRFLOW_CONN_PG_DISPATCH_REPLICA=postgres://dwh_reader:{V4}@pg-dispatch-ro.id.internal:5432/dispatch
""",
        "t34_url_pw",
        True,
    ),
    (
        "data/airflow/config/airflow.cfg",
        """[core]
dags_folder = /opt/airflow/dags
executor = CeleryExecutor
default_timezone = Asia/Jakarta
# dipakai untuk mengenkripsi Connections & Variables di metadata DB
fernet_key = {V}

[webserver]
base_url = https://airflow.data.rantau.co.id
expose_config = False

[scheduler]
min_file_process_interval = 60
""",
        "t34_fernet",
        True,
    ),
    (
        "data/dbt/profiles.yml",
        """rantau_dwh:
  target: prod
  outputs:
    prod:
      type: snowflake
      account: rantau-ap1
      user: DBT_PROD
      password: "{V}"
      role: TRANSFORMER
      warehouse: TRANSFORMING_M
      database: ANALYTICS
      schema: marts
      threads: 8
    dev:
      type: snowflake
      account: rantau-ap1
      user: DBT_DEV
      password: "{V2}"
      role: TRANSFORMER_DEV
      warehouse: TRANSFORMING_XS
      database: ANALYTICS_DEV
      schema: dbt_dev
      threads: 4
""",
        "t34_pw",
        True,
    ),
    (
        "data/streaming/trip-events-sink/client.properties",
        """# Confluent Cloud - cluster lkc-rantau-ap (trip.events, driver.locations)
bootstrap.servers=pkc-41p56.asia-southeast1.gcp.confluent.cloud:9092
security.protocol=SASL_SSL
sasl.mechanism=PLAIN
sasl.jaas.config={V}
client.dns.lookup=use_all_dns_ips
session.timeout.ms=45000
acks=all
""",
        "t34_confluent_jaas",
        True,
    ),
    (
        "data/spark/jobs/src/main/scala/com/rantau/dwh/TripFactsJob.scala",
        """package com.rantau.dwh

import org.apache.spark.sql.{SaveMode, SparkSession}

object TripFactsJob {
  def main(args: Array[String]): Unit = {
    val spark = SparkSession.builder().appName("trip-facts-daily").getOrCreate()
    val day = args.headOption.getOrElse(java.time.LocalDate.now().minusDays(1).toString)

    val trips = spark.read
      .format("jdbc")
      .option("url", "jdbc:postgresql://pg-dispatch-ro.id.internal:5432/dispatch")
      .option("dbtable", s"(select * from trips where created_at::date = '$day') t")
      .option("user", "dwh_reader")
      .option("password", "{V}")
      .option("fetchsize", "10000")
      .load()

    trips.write
      .format("jdbc")
      .option("url", "jdbc:clickhouse://ch-dwh.data.internal:8123/rantau")
      .option("dbtable", "fact_trips")
      .option("user", "dwh_etl")
      .option("password", "{V2}")
      .mode(SaveMode.Append)
      .save()
  }
}
""",
        "t34_pw",
        True,
    ),
    (
        "data/notebooks/analisis_pembatalan_order.ipynb",
        """{
 "cells": [
  {
   "cell_type": "markdown",
   "metadata": {},
   "source": ["# Analisis pembatalan order (Jabodetabek, Q3)\\n", "Sumber: ClickHouse `fact_trips`."]
  },
  {
   "cell_type": "code",
   "execution_count": 1,
   "metadata": {},
   "outputs": [],
   "source": [
    "import clickhouse_connect\\n",
    "import pandas as pd\\n",
    "\\n",
    "client = clickhouse_connect.get_client(\\n",
    "    host='ch-dwh.data.internal', port=8443, secure=True,\\n",
    "    username='analyst_putri', password='{V}')\\n"
   ]
  },
  {
   "cell_type": "code",
   "execution_count": 2,
   "metadata": {},
   "outputs": [],
   "source": [
    "df = client.query_df(\\"select city, cancel_reason, count() c from fact_trips where status='CANCELLED' group by 1, 2\\")\\n",
    "df.sort_values('c', ascending=False).head(20)"
   ]
  }
 ],
 "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
        "t34_pw",
        True,
    ),
    (
        "data/migrations/V2024_07_03__reporting_roles.sql",
        """-- Role untuk Metabase dan tim finance (read-only ke schema reporting)
CREATE ROLE metabase_ro LOGIN PASSWORD '{V}';
GRANT CONNECT ON DATABASE payments TO metabase_ro;
GRANT USAGE ON SCHEMA reporting TO metabase_ro;
GRANT SELECT ON ALL TABLES IN SCHEMA reporting TO metabase_ro;

CREATE ROLE finance_export LOGIN PASSWORD '{V2}' VALID UNTIL '2025-12-31';
GRANT USAGE ON SCHEMA reporting TO finance_export;
GRANT SELECT ON reporting.settlement_daily, reporting.driver_payouts TO finance_export;
""",
        "t34_pw",
        True,
    ),
    (
        "warehouse/scanners/stagenow/wifi_gudang_cikarang.xml",
        """<wap-provisioningdoc>
  <characteristic type="ProfileInfo">
    <parm name="created_wizard_version" value="11.0.1" />
  </characteristic>
  <characteristic type="Profile">
    <parm name="ProfileName" value="WiFi_Gudang_Cikarang" />
    <parm name="ModifiedDate" value="2024-05-14 09:12:40" />
    <characteristic type="WiFi" version="11.3">
      <parm name="emdk_name" value="" />
      <parm name="WiFiAction" value="add" />
      <characteristic type="network-profile">
        <parm name="SSID" value="RNT-WMS-CKR" />
        <parm name="SecurityMode" value="1" />
        <parm name="WPAMode" value="3" />
        <characteristic type="pre-shared-key">
          <parm name="PassphraseWPAClear" value="{V}" />
        </characteristic>
      </characteristic>
    </characteristic>
  </characteristic>
</wap-provisioningdoc>
""",
        "t34_wifi_psk",
        True,
    ),
    (
        "mobile/driver-android/keystore.properties",
        """# Upload key for Google Play (com.rantau.driver)
storeFile=../keys/rantau-driver-upload.jks
storePassword={V}
keyAlias=upload
keyPassword={V2}
""",
        "t34_pw",
        True,
    ),
    (
        "mobile/rider-ios/RantauRider/Networking/StagingAuth.swift",
        """import Foundation

/// Staging API sits behind basic auth (nginx). Only compiled into STAGING builds.
enum StagingAuth {
    #if STAGING
    static let header = "Basic {V}"
    #else
    static let header = ""
    #endif

    static func apply(to request: inout URLRequest) {
        guard !header.isEmpty else { return }
        request.setValue(header, forHTTPHeaderField: "Authorization")
    }
}
""",
        "t34_basic_b64",
        True,
    ),
    (
        "telematics/ingest/cmd/mqtt-bridge/main.go",
        """package main

import (
	"log"
	"os"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

func main() {
	opts := mqtt.NewClientOptions().
		AddBroker("ssl://mqtt.fleet.rantau.internal:8883").
		SetClientID("mqtt-bridge-" + os.Getenv("HOSTNAME")).
		SetUsername("ingest").
		SetPassword("{V}").
		SetKeepAlive(30 * time.Second).
		SetAutoReconnect(true)

	c := mqtt.NewClient(opts)
	if tok := c.Connect(); tok.Wait() && tok.Error() != nil {
		log.Fatalf("mqtt connect: %v", tok.Error())
	}
	c.Subscribe("fleet/+/telemetry", 1, handleTelemetry)
	select {}
}
""",
        "t34_mqtt_pw",
        True,
    ),
    (
        "telematics/firmware/rnt-tracker/include/config.h",
        """#ifndef RNT_TRACKER_CONFIG_H
#define RNT_TRACKER_CONFIG_H

/* Konfigurasi default tracker motor (modul SIMCom A7670) */
#define APN_NAME          "internet"
#define MQTT_HOST         "mqtt.fleet.rantau.co.id"
#define MQTT_PORT         8883
#define MQTT_USER         "tracker"
#define MQTT_PASSWORD     "{V}"
#define OTA_URL           "https://ota.fleet.rantau.co.id/rnt-tracker"
#define OTA_BASIC_PASS    "{V2}"
#define GPS_INTERVAL_MS   5000

#endif /* RNT_TRACKER_CONFIG_H */
""",
        "t34_mqtt_pw",
        True,
    ),
    (
        "telematics/traccar/conf/traccar.xml",
        """<?xml version='1.0' encoding='UTF-8'?>
<!DOCTYPE properties SYSTEM 'http://java.sun.com/dtd/properties.dtd'>
<properties>
    <entry key='config.default'>./conf/default.xml</entry>
    <entry key='database.driver'>org.postgresql.Driver</entry>
    <entry key='database.url'>jdbc:postgresql://pg-traccar.fleet.internal:5432/traccar</entry>
    <entry key='database.user'>traccar</entry>
    <entry key='database.password'>{V}</entry>
    <entry key='teltonika.port'>5027</entry>
    <entry key='mail.smtp.host'>smtp.sendgrid.net</entry>
    <entry key='mail.smtp.username'>apikey</entry>
    <entry key='mail.smtp.password'>{V2}</entry>
</properties>
""",
        "t34_pw",
        True,
    ),
    (
        "ops/alerting/payment_watchdog.py",
        """\"\"\"Posts to Slack when settlement lag goes over the threshold (ID and VN).\"\"\"

import requests

WEBHOOKS = {
    "ID": "{V}",
    "VN": "{V2}",
}
THRESHOLD_MIN = 20


def notify(country: str, lag_minutes: int) -> None:
    text = f":rotating_light: settlement lag {country}: {lag_minutes} menit (> {THRESHOLD_MIN})"
    requests.post(WEBHOOKS[country], json={"text": text}, timeout=5)
""",
        "t34_slack_webhook",
        True,
    ),
    (
        "ops/chatops/rantau-bot/src/config.ts",
        """export const config = {
  slack: {
    botToken: '{V}',
    signingSecret: process.env.SLACK_SIGNING_SECRET!,
    appToken: process.env.SLACK_APP_TOKEN!,
  },
  channels: {
    incidents: 'C04INC1DENT',
    payments: 'C05PAYMENTS',
  },
  pagerduty: { serviceId: 'P7K2Q9Z' },
};
""",
        "t34_slack_bot",
        True,
    ),
    (
        "ops/bots/kurir-bot/index.js",
        """// Bot Telegram untuk koordinator kurir Jakarta Timur (laporan SLA harian)
const TelegramBot = require('node-telegram-bot-api');

const TOKEN = '{V}';
const GROUP_ID = -1001845523311;

const bot = new TelegramBot(TOKEN, { polling: true });

bot.onText(/\\/sla/, async (msg) => {
  const report = await require('./sla').dailyReport('JKT-TIMUR');
  bot.sendMessage(msg.chat.id, report, { parse_mode: 'Markdown' });
});

module.exports = { bot, GROUP_ID };
""",
        "t34_telegram",
        True,
    ),
    (
        "warehouse/wms/scripts/Send-ShiftReport.ps1",
        """# Rapor vardiya sonu - Hadımköy deposu (Teams kanalına gönderir)
param(
    [string]$Depo = "HDK",
    [datetime]$Tarih = (Get-Date)
)

$WebhookUrl = "{V}"

$ozet = Invoke-Sqlcmd -ServerInstance "wms-sql-tr" -Database "WMS" -Query "EXEC dbo.VardiyaOzeti '$Depo'"
$body = @{
    "@type"    = "MessageCard"
    "summary"  = "Vardiya raporu $Depo"
    "text"     = "Toplanan: $($ozet.Toplanan) / Sevk edilen: $($ozet.Sevk)"
} | ConvertTo-Json

Invoke-RestMethod -Uri $WebhookUrl -Method Post -Body $body -ContentType "application/json"
""",
        "t34_teams_webhook",
        True,
    ),
    (
        "ops/cron/backup_check.sh",
        """#!/bin/sh
# Kiểm tra backup Postgres hằng ngày, báo vào Google Chat của team SRE VN
GCHAT_URL='{V}'

last=$(aws s3 ls s3://rantau-vn-backups/pg/ | sort | tail -n1 | awk '{print $1}')
today=$(date +%F)
if [ "$last" != "$today" ]; then
  curl -s -X POST -H 'Content-Type: application/json' \\
    -d "{\\"text\\": \\"Backup Postgres VN chưa chạy hôm nay (lần cuối: $last)\\"}" \\
    "$GCHAT_URL"
fi
""",
        "t34_gchat_webhook",
        True,
    ),
]

POSITIVE += [
    (
        "mobile/driver-android/Jenkinsfile",
        """pipeline {
    agent { label 'android' }
    environment {
        GRADLE_OPTS = '-Dorg.gradle.daemon=false'
    }
    stages {
        stage('Build') {
            steps {
                sh './gradlew :app:bundleProdRelease'
            }
        }
        stage('Upload to Nexus') {
            steps {
                sh '''
                  curl -fsS -u deploy:{V} \\
                    --upload-file app/build/outputs/bundle/prodRelease/app-prod-release.aab \\
                    https://nexus.rantau.internal/repository/android-releases/driver/${BUILD_NUMBER}/app.aab
                '''
            }
        }
    }
}
""",
        "t34_weak_pw",
        True,
    ),
    (
        "mobile/rider-rn/.npmrc",
        """@rantau:registry=https://npm.pkg.github.com
//npm.pkg.github.com/:_authToken={V}
engine-strict=true
save-exact=true
""",
        "t34_github",
        True,
    ),
    (
        "services/pricing/.gitlab-ci.yml",
        """stages: [test, build, release]

variables:
  GO_VERSION: "1.22"
  # token untuk go get modul privat dari gitlab.rantau.co.id/platform/*
  GITLAB_TOKEN: "{V}"
  GOPRIVATE: gitlab.rantau.co.id

test:
  stage: test
  image: golang:${GO_VERSION}
  before_script:
    - git config --global url."https://oauth2:${GITLAB_TOKEN}@gitlab.rantau.co.id/".insteadOf "https://gitlab.rantau.co.id/"
  script:
    - go test ./... -race -count=1
""",
        "t34_gitlab",
        True,
    ),
    (
        "docs/runbook/id/DB-03-restore-replika-dispatch.md",
        """# DB-03: Restore replika dispatch dari snapshot

**Pemilik:** Tim SRE Jakarta · **Terakhir diperbarui:** 2024-09-18

## Langkah

1. Pastikan snapshot terakhir ada di bucket `rantau-id-backups/pg/dispatch/`.
2. Restore ke instance sementara:

```bash
export PGPASSWORD='{V}'
pg_restore -h pg-restore-tmp.id.internal -U sre_admin -d dispatch --jobs 8 dispatch.dump
```

3. Cek jumlah baris tabel `trips` dan `driver_locations` dibanding primary.
4. Arahkan `pg-dispatch-ro` ke instance baru (ubah DNS internal, TTL 60s).

> Kalau restore gagal di tengah jalan, hapus database lalu ulangi dari langkah 2.
""",
        "t34_pw",
        True,
    ),
    (
        "docs/runbook/vi/redis-dispatch-day-bo-nho.md",
        """# Xử lý Redis dispatch (VN) bị đầy bộ nhớ

Triệu chứng: cảnh báo `RedisMemoryHigh` trên Grafana, tài xế không nhận được cuốc.

1. Vào bastion `bastion-hcm-01`, kết nối Redis:

```bash
redis-cli -h redis-dispatch.vn.internal -p 6379 -a '{V}' --no-auth-warning info memory
```

2. Kiểm tra các key lớn:

```bash
redis-cli -h redis-dispatch.vn.internal -a '{V}' --no-auth-warning --bigkeys
```

3. Nếu `geo:drivers:*` quá lớn, chạy job dọn dẹp `dispatch-gc` trên Argo.
4. Báo lại trong kênh #sre-vn.
""",
        "t34_pw",
        True,
    ),
    (
        "support/tickets/export/OPS-TR-4471.json",
        """{
  "key": "OPS-TR-4471",
  "summary": "Tuzla deposu el terminalleri WMS'e bağlanamıyor",
  "reporter": "emre.yilmaz",
  "created": "2024-10-02T07:41:12+03:00",
  "comments": [
    {
      "author": "emre.yilmaz",
      "body": "Sabah vardiyasında 14 terminal login ekranında kaldı. Servis hesabı kilitlenmiş olabilir."
    },
    {
      "author": "burak.demir",
      "body": "wms_scanner hesabının kilidini açtım, şifreyi de sıfırladım. Yeni şifre: {V} — terminallerde StageNow profili güncellenene kadar elle girin."
    },
    {
      "author": "emre.yilmaz",
      "body": "Tamamdır, çalışıyor. Teşekkürler."
    }
  ],
  "status": "Resolved"
}
""",
        "t34_weak_pw",
        True,
    ),
    (
        "support/chat-exports/slack/payments-id/2024-08-21.json",
        """[
  {
    "type": "message",
    "user": "U03DIMAS",
    "text": "mas, server key midtrans yang buat staging RantauKirim apa ya? di vault kosong",
    "ts": "1724213402.114329"
  },
  {
    "type": "message",
    "user": "U02AYUPAY",
    "text": "pake ini dulu ya `{V}` nanti aku masukin ke vault sore ini",
    "ts": "1724213511.220019"
  },
  {
    "type": "message",
    "user": "U03DIMAS",
    "text": "siap, makasih kak :pray:",
    "ts": "1724213530.330145"
  }
]
""",
        "t34_midtrans_server",
        True,
    ),
    (
        "support/tools/zendesk_sync/sync_macros.py",
        """\"\"\"Sinkronkan macro Zendesk (balasan standar CS) dari repo ke tiga brand: ID, VN, TR.\"\"\"

import requests
import yaml

SUBDOMAIN = "rantau"
EMAIL = "cs-automation@rantau.co.id"
API_TOKEN = "{V}"

session = requests.Session()
session.auth = (f"{EMAIL}/token", API_TOKEN)


def upsert_macro(macro: dict) -> None:
    url = f"https://{SUBDOMAIN}.zendesk.com/api/v2/macros.json"
    resp = session.post(url, json={"macro": macro}, timeout=10)
    resp.raise_for_status()


if __name__ == "__main__":
    for m in yaml.safe_load(open("macros.yml", encoding="utf-8")):
        upsert_macro(m)
""",
        "t34_zendesk_token",
        True,
    ),
    (
        "support/scripts/freshdesk_close_stale.sh",
        """#!/usr/bin/env bash
# Tutup tiket Freshdesk (helpdesk merchant) yang pending > 14 hari tanpa balasan
set -eu
FD_DOMAIN="rantaumerchant.freshdesk.com"
FD_KEY="{V}"

curl -s -u "${FD_KEY}:X" \\
  "https://${FD_DOMAIN}/api/v2/search/tickets?query=\\"status:3%20AND%20updated_at:<'$(date -d '14 days ago' +%F)'\\"" \\
  | jq -r '.results[].id' \\
  | while read -r id; do
      curl -s -u "${FD_KEY}:X" -X PUT -H 'Content-Type: application/json' \\
        -d '{"status":5}' "https://${FD_DOMAIN}/api/v2/tickets/${id}" > /dev/null
    done
""",
        "t34_freshdesk_key",
        True,
    ),
    (
        "infra/ansible/roles/datadog/files/datadog.yaml",
        """site: ap1.datadoghq.com
api_key: {V}
hostname_fqdn: true
tags:
  - team:sre
  - country:id
logs_enabled: true
process_config:
  process_collection:
    enabled: true
""",
        "t34_datadog_key",
        True,
    ),
    (
        "infra/ansible/group_vars/bastion.yml",
        """bastion_users:
  - name: andi
    groups: [sre]
  - name: linh.nguyen
    groups: [sre]

# deploy key untuk tarik repo config dari GitLab (read-only)
gitlab_deploy_key: |
  {IV}

sshd_permit_root_login: "no"
sshd_password_authentication: "no"
""",
        "t34_openssh",
        True,
    ),
    (
        "services/auth/keys/jwt-signing-prod.pem",
        """{V}
""",
        "t34_rsa_pem",
        True,
    ),
    (
        "support/backoffice/backoffice/settings.py",
        """from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = "{V}"

DEBUG = False
ALLOWED_HOSTS = ["backoffice.rantau.co.id", "backoffice.rantau.vn", "backoffice.rantau.com.tr"]

LANGUAGE_CODE = "id"
LANGUAGES = [("id", "Bahasa Indonesia"), ("vi", "Tiếng Việt"), ("tr", "Türkçe"), ("en", "English")]
TIME_ZONE = "Asia/Jakarta"
USE_I18N = True

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "refunds",
    "driver_kyc",
]
""",
        "t34_django_key",
        True,
    ),
    (
        "warehouse/wms/src/Rantau.Wms.Api/appsettings.Production.json",
        """{
  "ConnectionStrings": {
    "Wms": "Server=wms-sql-tr.database.windows.net;Database=WMS;User Id=wms_app;Password={V};Encrypt=True;TrustServerCertificate=False",
    "WmsReporting": "Server=wms-sql-tr.database.windows.net;Database=WMS;User Id=wms_report;Password={V2};ApplicationIntent=ReadOnly"
  },
  "Scanner": {
    "SessionTimeoutMinutes": 480,
    "AllowedDeviceModels": [ "TC52", "TC58", "MC3300" ]
  },
  "Serilog": {
    "MinimumLevel": "Information"
  }
}
""",
        "t34_pw",
        True,
    ),
    (
        "warehouse/scanners/provision/kurulum.bat",
        r"""@echo off
REM El terminali docking PC kurulumu - Hadimkoy deposu
set SHARE=\\fs-hdk-01\wms-apk
set SVC_USER=RANTAU\svc_wms_dock

net use Z: %SHARE% /user:%SVC_USER% {V} /persistent:no
if errorlevel 1 (
  echo Paylasim baglanamadi
  exit /b 1
)

for %%f in (Z:\latest\*.apk) do adb install -r "%%f"
net use Z: /delete /y
""",
        "t34_weak_pw",
        True,
    ),
    (
        "services/dispatch/config/prod-tr.yaml",
        """server:
  port: 8080
  read_timeout: 5s

auth:
  issuer: https://auth.rantau.com.tr
  # HS256 signing secret for driver session tokens (TR cluster only)
  jwt_secret: "{V}"
  access_ttl: 15m
  refresh_ttl: 720h

matching:
  radius_m: 3000
  max_candidates: 12
""",
        "t34_jwt_secret",
        True,
    ),
    (
        "services/partner-gateway/src/main/kotlin/com/rantau/partner/webhook/SignatureVerifier.kt",
        """package com.rantau.partner.webhook

import javax.crypto.Mac
import javax.crypto.spec.SecretKeySpec

/**
 * Verifies X-Rantau-Signature on callbacks from B2B partners (e-commerce merchants using
 * RantauKirim same-day delivery).
 */
object SignatureVerifier {
    private val partnerSecrets = mapOf(
        "tokoserba" to "{V}",
        "hangviet" to "{V2}",
    )

    fun verify(partner: String, body: ByteArray, signature: String): Boolean {
        val secret = partnerSecrets[partner] ?: return false
        val mac = Mac.getInstance("HmacSHA256").apply { init(SecretKeySpec(secret.toByteArray(), "HmacSHA256")) }
        return mac.doFinal(body).joinToString("") { "%02x".format(it) } == signature
    }
}
""",
        "t34_hmac_secret",
        True,
    ),
    (
        "support/summariser/summarise.py",
        """\"\"\"Ringkas percakapan CS panjang (ID/VN/TR) jadi 3 kalimat untuk agen shift berikutnya.\"\"\"

from openai import OpenAI

client = OpenAI(api_key="{V}")

PROMPT = (
    "Summarise this customer-support conversation in three sentences in the agent's language. "
    "Do not include phone numbers or addresses."
)


def summarise(transcript: str, lang: str) -> str:
    resp = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "system", "content": PROMPT}, {"role": "user", "content": transcript}],
    )
    return resp.choices[0].message.content
""",
        "t34_openai",
        True,
    ),
    (
        "services/dispatch/http/driver-api.http",
        """### Ambil order aktif untuk driver (staging)
GET https://driver-api.staging.rantau.co.id/v2/orders/active
Accept: application/json
Authorization: Bearer {V}

### Update lokasi
POST https://driver-api.staging.rantau.co.id/v2/location
Content-Type: application/json
Authorization: Bearer {V}

{"lat": -6.2241, "lng": 106.8451, "heading": 270, "speed": 8.3}
""",
        "t34_session_jwt",
        True,
    ),
    (
        "infra/vault/bootstrap-policies.sh",
        """#!/usr/bin/env bash
# Bootstrap kebijakan Vault untuk namespace payments (dijalankan sekali oleh SRE)
set -euo pipefail
export VAULT_ADDR=https://vault.rantau.internal:8200
export VAULT_TOKEN={V}

for p in payments-id payments-vn payments-tr; do
  vault policy write "$p" "policies/$p.hcl"
done
vault auth enable -path=k8s-prod kubernetes || true
""",
        "t34_vault_token",
        True,
    ),
    (
        "notif/email/config/mail.php",
        """<?php

return [
    'default' => env('MAIL_MAILER', 'sendgrid'),
    'mailers' => [
        'sendgrid' => [
            'transport' => 'smtp',
            'host' => 'smtp.sendgrid.net',
            'port' => 587,
            'encryption' => 'tls',
            'username' => 'apikey',
            'password' => '{V}',
        ],
    ],
    'from' => [
        'address' => 'no-reply@rantau.co.id',
        'name' => 'Rantau',
    ],
];
""",
        "t34_sendgrid",
        True,
    ),
]


NEGATIVE: list[evalset.Template] = [
    (
        "payments/midtrans-adapter/.env.example",
        """# Salin ke .env lalu isi. Nilai asli ada di Vault: secret/payments/id/midtrans
APP_ENV=local
APP_PORT=8080
MIDTRANS_IS_PRODUCTION=false
MIDTRANS_MERCHANT_ID=G812345678
MIDTRANS_SERVER_KEY={V}
MIDTRANS_SERVER_KEY_KIRIM={V2}
MIDTRANS_NOTIFICATION_URL=http://localhost:8080/hooks/midtrans
DB_HOST=localhost
DB_PASSWORD={V3}
""",
        "t34_ph_id",
        False,
    ),
    (
        "payments/tr-paytr-java/src/main/resources/application-prod.yml",
        """server:
  port: 8443

rantau:
  tr:
    iyzico:
      api-key: ${IYZICO_API_KEY}
      secret-key: {V}
      base-url: https://api.iyzipay.com
    paytr:
      merchant-id: "318452"
      merchant-key: {V2}
      merchant-salt: {V3}
      ok-url: https://rantau.com.tr/odeme/basarili
      fail-url: https://rantau.com.tr/odeme/hata
""",
        "t34_spring_ref",
        False,
    ),
    (
        "payments/payout-worker/src/clients/xendit.prod.ts",
        """import { Xendit } from 'xendit-node';

const secretKey = {V};
if (!secretKey) {
  throw new Error('XENDIT_SECRET_KEY belum di-set');
}

export const xendit = new Xendit({ secretKey });

export const callbackToken = {V2};
""",
        "t34_js_ref",
        False,
    ),
    (
        "payments/vn-momo/config/services.php",
        """<?php

return [
    'momo' => [
        'partner_code' => env('MOMO_PARTNER_CODE'),
        'access_key'   => env('MOMO_ACCESS_KEY'),
        'secret_key'   => {V},
    ],
    'paytr' => [
        'merchant_key'  => {V2},
        'merchant_salt' => {V3},
    ],
];
""",
        "t34_php_ref",
        False,
    ),
    (
        "payments/vn-checkout/checkout/settings/base.py",
        """import os

import environ

env = environ.Env()

VNPAY = {
    "TMN_CODE": os.getenv("VNPAY_TMN_CODE", "RANTAUV1"),
    "HASH_SECRET": {V},
    "PAYMENT_URL": "https://sandbox.vnpayment.vn/paymentv2/vpcpay.html",
    "RETURN_URL": "http://localhost:8000/vnpay/return",
}

MOMO_SECRET_KEY = {V2}
DATABASES = {"default": env.db("DATABASE_URL")}
""",
        "t34_py_ref",
        False,
    ),
    (
        "payments/vn-zalopay/internal/zalopay/env.go",
        """package zalopay

import (
	"os"
	"strconv"
	"time"
)

// FromEnv builds the config from the pod environment (values come from the
// payments-gateway-keys Secret via External Secrets).
func FromEnv() Config {
	appID, _ := strconv.Atoi(os.Getenv("ZALOPAY_APP_ID"))
	return Config{
		AppID:    appID,
		Key1:     {V},
		Key2:     {V2},
		Endpoint: "https://openapi.zalopay.vn/v2",
		Timeout:  10 * time.Second,
	}
}
""",
        "t34_go_ref",
        False,
    ),
    (
        "payments/midtrans-adapter/testdata/notification_settlement.json",
        """{
  "transaction_time": "2024-11-04 19:22:31",
  "transaction_status": "settlement",
  "transaction_id": "3f1c2a9e-5b7d-4e0a-8c6f-1d2e3f4a5b6c",
  "status_message": "midtrans payment notification",
  "status_code": "200",
  "signature_key": "{V}",
  "settlement_time": "2024-11-04 19:22:40",
  "payment_type": "gopay",
  "order_id": "RNT-ID-2024110400123",
  "merchant_id": "G812345678",
  "gross_amount": "38500.00",
  "fraud_status": "accept",
  "currency": "IDR"
}
""",
        "t34_sha512_sig",
        False,
    ),
    (
        "payments/vn-checkout/logs/vnpay-return-sample.log",
        """2024-10-11 21:04:55,118 INFO vnpay.return GET /vnpay/return?vnp_Amount=8500000&vnp_BankCode=NCB&vnp_BankTranNo=VNP14523671&vnp_CardType=ATM&vnp_OrderInfo=Thanh+toan+chuyen+xe+RNT-VN-88213&vnp_PayDate=20241011210442&vnp_ResponseCode=00&vnp_TmnCode=RANTAUV1&vnp_TransactionNo=14523671&vnp_TransactionStatus=00&vnp_TxnRef=RNT-VN-88213&vnp_SecureHash={V}
2024-10-11 21:04:55,121 INFO vnpay.return checksum ok txn_ref=RNT-VN-88213 response_code=00
2024-10-11 21:05:02,407 INFO vnpay.return GET /vnpay/return?vnp_Amount=12000000&vnp_BankCode=VCB&vnp_OrderInfo=Thanh+toan+don+giao+hang+RNT-VN-88219&vnp_PayDate=20241011210451&vnp_ResponseCode=24&vnp_TmnCode=RANTAUV1&vnp_TxnRef=RNT-VN-88219&vnp_SecureHash={V2}
2024-10-11 21:05:02,409 WARNING vnpay.return khách hàng hủy giao dịch txn_ref=RNT-VN-88219
""",
        "t34_sha512_sig",
        False,
    ),
    (
        "payments/vn-momo/tests/fixtures/ipn_success.json",
        """{
  "partnerCode": "RANTAUVN",
  "orderId": "RNT-VN-77120",
  "requestId": "RNT-VN-77120-1728651234",
  "amount": 54000,
  "orderInfo": "Thanh toán chuyến xe",
  "orderType": "momo_wallet",
  "transId": 4088112233,
  "resultCode": 0,
  "message": "Thành công.",
  "payType": "qr",
  "responseTime": 1728651240123,
  "extraData": "",
  "signature": "{V}"
}
""",
        "t34_hmac_sig",
        False,
    ),
    (
        "web/checkout-id/templates/snap_checkout.html",
        """<!doctype html>
<html lang="id">
<head>
  <meta charset="utf-8">
  <title>Pembayaran - Rantau</title>
  <script src="https://app.midtrans.com/snap/snap.js" data-client-key="{V}"></script>
</head>
<body>
  <button id="bayar">Bayar sekarang</button>
  <script>
    document.getElementById('bayar').onclick = function () {
      window.snap.pay('{{ snap_token }}', {
        onSuccess: function () { location.href = '/pembayaran/berhasil'; },
        onPending: function () { location.href = '/pembayaran/menunggu'; },
        onError: function () { alert('Pembayaran gagal, silakan coba lagi'); }
      });
    };
  </script>
</body>
</html>
""",
        "t34_midtrans_client",
        False,
    ),
    (
        "mobile/rider-rn/src/payments/xenditCard.ts",
        """import Xendit from 'xendit-js-node';

// Public key only: used to tokenize cards on the device. The secret key never leaves the backend.
const XENDIT_PUBLIC_KEY = '{V}';

export function tokenizeCard(card: CardInput): Promise<string> {
  Xendit.setPublishableKey(XENDIT_PUBLIC_KEY);
  return new Promise((resolve, reject) => {
    Xendit.card.createToken(
      { ...card, is_multiple_use: true },
      (err: unknown, token: { id: string }) => (err ? reject(err) : resolve(token.id)),
    );
  });
}
""",
        "t34_xendit_public",
        False,
    ),
    (
        "web/ops-dashboard/src/map/LiveFleetMap.tsx",
        """import mapboxgl from 'mapbox-gl';
import { useEffect, useRef } from 'react';

// public token (URL-restricted to ops.rantau.co.id), safe to ship in the bundle
mapboxgl.accessToken = '{V}';

export function LiveFleetMap({ city }: { city: string }) {
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const map = new mapboxgl.Map({
      container: ref.current!,
      style: 'mapbox://styles/rantau/clx0ops01',
      center: CITY_CENTERS[city],
      zoom: 11,
    });
    return () => map.remove();
  }, [city]);
  return <div ref={ref} className="h-full w-full" />;
}
""",
        "t34_mapbox_pk",
        False,
    ),
    (
        "notif/sms-router/config/providers.yaml",
        """providers:
  twilio:
    account_sid: {V}
    # TR sub-account (kurye OTP), billed separately
    subaccount_sid: {V2}
    messaging_service_env: TWILIO_MESSAGING_SERVICE_SID
    auth_token_env: TWILIO_AUTH_TOKEN
    countries: [TR]
  netgsm:
    usercode_env: NETGSM_USERCODE
    password_env: NETGSM_PASSWORD
    header: RANTAU
    countries: [TR]
  zenziva:
    userkey_env: ZENZIVA_USERKEY
    passkey_env: ZENZIVA_PASSKEY
    countries: [ID]
""",
        "t34_twilio_sid",
        False,
    ),
    (
        "payments/tr-iyzico/README.md",
        """# tr-iyzico

iyzico entegrasyonu (Rantau Lojistik A.Ş. kurye ve sürücü ödemeleri).

## Yerel geliştirme

`src/main/resources/application-local.yml` dosyasını oluşturun:

```yaml
rantau:
  tr:
    iyzico:
      api-key: {V}
      secret-key: {V2}
      base-url: https://sandbox-api.iyzipay.com
```

Sandbox anahtarlarını ödeme ekibinden (#odeme-tr kanalı) isteyin; canlı anahtarlar yalnızca
Vault'ta (`secret/tr/payments/iyzico`) durur ve asla repoya girmez.
""",
        "t34_ph_tr",
        False,
    ),
    (
        "notif/sms-gateway/src/main/kotlin/com/rantau/notif/infobip/InfobipModule.kt",
        """package com.rantau.notif.infobip

import okhttp3.OkHttpClient
import org.springframework.context.annotation.Bean
import org.springframework.context.annotation.Configuration

@Configuration
class InfobipModule {
    @Bean
    fun infobipClient(http: OkHttpClient): InfobipClient =
        InfobipClient(
            http = http,
            baseUrl = "https://9rk8zp.api.infobip.com",
            apiKey = {V},
        )
}
""",
        "t34_kt_ref",
        False,
    ),
    (
        "notif/otp-service/test/vonage.test.js",
        """const nock = require('nock');

process.env.VONAGE_API_KEY = 'a1b2c3d4';
process.env.VONAGE_API_SECRET = '{V}';

const { sendOtp } = require('../src/providers/vonage');

describe('sendOtp', () => {
  it('sends the OTP text in Vietnamese', async () => {
    nock('https://rest.nexmo.com')
      .post('/sms/json')
      .reply(200, { messages: [{ status: '0', 'message-id': 'TEST-MSG-1' }] });
    await expect(sendOtp('84901234567', '123456')).resolves.toBe('TEST-MSG-1');
  });

  it('uses a second fake secret for the retry client', () => {
    expect('{V2}').not.toEqual(process.env.VONAGE_API_SECRET);
  });
});
""",
        "t34_fake_token",
        False,
    ),
    (
        "payments/midtrans-adapter/internal/midtrans/client_test.go",
        """package midtrans

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestChargeSendsBasicAuth(t *testing.T) {
	const serverKey = "{V}"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, _, ok := r.BasicAuth()
		if !ok || user != serverKey {
			t.Fatalf("expected basic auth with the test server key, got %q", user)
		}
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"status_code":"201","transaction_status":"pending"}`))
	}))
	defer srv.Close()

	c := New(srv.URL, serverKey)
	if _, err := c.Charge(ChargeRequest{OrderID: "TEST-1", GrossAmount: 10000}); err != nil {
		t.Fatal(err)
	}
}
""",
        "t34_fake_token",
        False,
    ),
    (
        "notif/vn-sms/Rantau.Notif.VnSms/EsmsOptionsSetup.cs",
        """using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;

namespace Rantau.Notif.VnSms;

public sealed class EsmsOptionsSetup(IConfiguration configuration) : IConfigureOptions<EsmsOptions>
{
    public void Configure(EsmsOptions options)
    {
        options.BaseUrl = configuration["Esms:BaseUrl"] ?? "https://rest.esms.vn/MainService.svc/json";
        options.ApiKey = configuration["Esms:ApiKey"]!;
        options.SecretKey = {V};
        options.Brandname = "RANTAU";
    }
}
""",
        "t34_cs_ref",
        False,
    ),
    (
        "support/admin/config/initializers/onesignal_prod.rb",
        """OneSignal.configure do |config|
  config.app_id = ENV.fetch("ONESIGNAL_APP_ID")
  config.rest_api_key = {V}
  config.logger = Rails.logger
end

Zendesk.configure do |config|
  config.url = "https://rantau.zendesk.com/api/v2"
  config.username = "cs-automation@rantau.co.id/token"
  config.token = {V2}
end
""",
        "t34_rb_ref",
        False,
    ),
    (
        "mobile/rider-ios/fastlane/Fastfile",
        """default_platform(:ios)

platform :ios do
  lane :beta do
    api_key = app_store_connect_api_key(
      key_id: "{V}",
      issuer_id: "69a6de7e-0c4b-47e3-e053-5b8c7c11a4d1",
      key_filepath: ENV["ASC_KEY_PATH"],
      in_house: false
    )
    match(type: "appstore", readonly: true, api_key: api_key)
    build_app(scheme: "RantauRider", export_method: "app-store")
    upload_to_testflight(api_key: api_key, skip_waiting_for_build_processing: true)
  end

  lane :push_cert_info do
    UI.message("APNs auth key id: {V2}, team: 4R7QK2M9XZ")
  end
end
""",
        "t34_apns_key_id",
        False,
    ),
    (
        "mobile/firebase/app-distribution.json",
        """{
  "apps": [
    { "name": "RantauDriver (Android, ID)", "appId": "{V}", "groups": ["qa-jkt", "ops-id"] },
    { "name": "RantauDriver (Android, VN)", "appId": "{V2}", "groups": ["qa-hcm"] },
    { "name": "RantauRider (iOS)", "appId": "{V3}", "groups": ["qa-jkt", "qa-ist"] }
  ],
  "releaseNotesFile": "release-notes.txt"
}
""",
        "t34_firebase_app_id",
        False,
    ),
    (
        "mobile/rider-ios/RantauRider/Info.plist",
        """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>CFBundleDisplayName</key>
	<string>Rantau</string>
	<key>GIDClientID</key>
	<string>{V}</string>
	<key>GIDServerClientID</key>
	<string>{V2}</string>
	<key>NSLocationWhenInUseUsageDescription</key>
	<string>Rantau membutuhkan lokasi Anda untuk menentukan titik jemput.</string>
</dict>
</plist>
""",
        "t34_google_client_id",
        False,
    ),
    (
        "mobile/driver_flutter/lib/config/maps_config_env.dart",
        """/// Konfigurasi peta dibaca dari --dart-define saat build (lihat codemagic.yaml).
class MapsConfigEnv {
  MapsConfigEnv._();

  static final String hereApiKey = {V};
  static final String hereApiKeyVn = {V2};
  static const double defaultZoom = 15.5;
}
""",
        "t34_dart_ref",
        False,
    ),
    (
        "mobile/rider-ios/RantauRider/Networking/StagingAuth+Release.swift",
        """import Foundation

/// Basic auth for the staging API, resolved at runtime (never hard-coded).
enum StagingAuthRuntime {
    static var header: String {
        let encoded = {V}
        return encoded.isEmpty ? "" : "Basic \\(encoded)"
    }
}
""",
        "t34_swift_ref",
        False,
    ),
    (
        "mobile/driver-android/app/src/main/res/values-in/strings.xml",
        """<?xml version="1.0" encoding="utf-8"?>
<resources>
    <string name="login_title">Masuk sebagai Mitra</string>
    <string name="login_password_hint">Kata sandi</string>
    <string name="error_password_wrong">{V}</string>
    <string name="error_password_short">{V2}</string>
    <string name="forgot_password">Lupa kata sandi?</string>
    <string name="otp_hint">{V3}</string>
</resources>
""",
        "t34_i18n_id",
        False,
    ),
    (
        "mobile/driver_flutter/lib/l10n/app_vi.arb",
        """{
  "@@locale": "vi",
  "loginTitle": "Đăng nhập tài xế",
  "passwordLabel": "Mật khẩu",
  "passwordError": "{V}",
  "@passwordError": { "description": "Shown when the password check fails" },
  "passwordTooShort": "{V2}",
  "otpPrompt": "{V3}"
}
""",
        "t34_i18n_vi",
        False,
    ),
    (
        "support/admin/config/locales/tr.yml",
        """tr:
  devise:
    failure:
      invalid: "{V}"
      timeout: "{V2}"
    passwords:
      edit:
        change_my_password: "Şifremi değiştir"
        new_password: "Yeni şifre"
  activerecord:
    errors:
      models:
        agent:
          attributes:
            password:
              too_short: "{V3}"
""",
        "t34_i18n_tr",
        False,
    ),
    (
        "mobile/rider-ios/RantauRider/id.lproj/Localizable.strings",
        """/* Login screen */
"login.title" = "Masuk ke Rantau";
"login.password.placeholder" = "Kata sandi";
"login.error.password" = "{V}";
"login.error.session" = "{V2}";
"login.forgot" = "Lupa kata sandi?";
""",
        "t34_i18n_id",
        False,
    ),
    (
        "web/merchant-portal/src/i18n/vi.ts",
        """export const vi = {
  login: {
    title: 'Cổng đối tác Rantau',
    password: 'Mật khẩu',
    errors: {
      wrongPassword: '{V}',
      passwordTooShort: '{V2}',
      tokenInvalid: '{V3}',
    },
  },
};
""",
        "t34_i18n_vi",
        False,
    ),
    (
        "web/courier-portal-tr/templates/giris.html",
        """{% extends "base.html" %}
{% block content %}
<form method="post" action="/giris" class="login">
  <label for="telefon">Telefon</label>
  <input id="telefon" name="telefon" type="tel" placeholder="5XX XXX XX XX">
  <label for="sifre">Şifre</label>
  <input id="sifre" name="password" type="password" autocomplete="current-password">
  {% if hata %}<p class="error">{V}</p>{% endif %}
  <p class="hint">{V2}</p>
  <button type="submit">Giriş yap</button>
</form>
{% endblock %}
""",
        "t34_i18n_tr",
        False,
    ),
    (
        "services/auth/src/main/java/com/rantau/auth/AuthError.java",
        """package com.rantau.auth;

public enum AuthError {
    WRONG_PASSWORD("{V}", "Kata sandi salah"),
    TOKEN_EXPIRED("{V2}", "Token kedaluwarsa"),
    OTP_INVALID("{V3}", "Kode OTP tidak valid");

    private final String code;
    private final String messageId;

    AuthError(String code, String messageId) {
        this.code = code;
        this.messageId = messageId;
    }

    public String code() { return code; }
    public String messageId() { return messageId; }
}
""",
        "t34_error_code",
        False,
    ),
    (
        "payments/postman/Rantau Payments.postman_collection.json",
        """{
  "info": { "name": "Rantau Payments", "schema": "https://schema.getpostman.com/json/collection/v2.1.0/collection.json" },
  "auth": {
    "type": "basic",
    "basic": [
      { "key": "username", "value": "{V}", "type": "string" },
      { "key": "password", "value": "", "type": "string" }
    ]
  },
  "item": [
    {
      "name": "Xendit - create invoice",
      "request": {
        "method": "POST",
        "header": [{ "key": "Authorization", "value": "Basic {V2}" }],
        "url": "https://api.xendit.co/v2/invoices"
      }
    },
    {
      "name": "Driver API - active order",
      "request": {
        "method": "GET",
        "header": [{ "key": "Authorization", "value": "Bearer {V3}" }],
        "url": "https://driver-api.staging.rantau.co.id/v2/orders/active"
      }
    }
  ]
}
""",
        "t34_postman_var",
        False,
    ),
]

NEGATIVE += [
    (
        "services/auth/db/seed/002_admin_users.sql",
        """-- Akun admin awal untuk back office (hash bcrypt, kata sandi dikirim terpisah via 1Password)
INSERT INTO admin_users (email, full_name, country, password_hash, must_change_password) VALUES
  ('andi.pratama@rantau.co.id', 'Andi Pratama', 'ID', '{V}', true),
  ('linh.nguyen@rantau.vn', 'Nguyễn Thị Linh', 'VN', '{V2}', true),
  ('mehmet.kaya@rantau.com.tr', 'Mehmet Kaya', 'TR', '{V3}', true)
ON CONFLICT (email) DO NOTHING;
""",
        "t34_bcrypt",
        False,
    ),
    (
        "support/backoffice/refunds/fixtures/agents.json",
        """[
  {
    "model": "auth.user",
    "pk": 1,
    "fields": {
      "username": "cs_lead_jkt",
      "password": "{V}",
      "is_staff": true,
      "email": "cs-lead-jkt@rantau.co.id"
    }
  },
  {
    "model": "auth.user",
    "pk": 2,
    "fields": {
      "username": "cs_lead_hcm",
      "password": "{V2}",
      "is_staff": true,
      "email": "cs-lead-hcm@rantau.vn"
    }
  }
]
""",
        "t34_pbkdf2",
        False,
    ),
    (
        "services/auth/internal/password/argon_test.go",
        """package password

import "testing"

// Hashes produced by `rantau-auth hash` with the production parameters; the
// plaintexts are in testdata/plain.txt.gpg (not needed to run these tests).
var knownHashes = []string{
	"{V}",
	"{V2}",
}

func TestParseParams(t *testing.T) {
	for _, h := range knownHashes {
		p, err := parse(h)
		if err != nil {
			t.Fatalf("parse(%q): %v", h, err)
		}
		if p.Memory != 19456 || p.Iterations != 2 {
			t.Errorf("unexpected params %+v", p)
		}
	}
}
""",
        "t34_argon2",
        False,
    ),
    (
        "data/migrations/roles_dump_2024-06.sql",
        """--
-- PostgreSQL database cluster dump (roles only), pg-payments.id.internal
--
CREATE ROLE payments;
ALTER ROLE payments WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS PASSWORD '{V}';
CREATE ROLE metabase_ro;
ALTER ROLE metabase_ro WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS PASSWORD '{V2}';
CREATE ROLE debezium;
ALTER ROLE debezium WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN REPLICATION NOBYPASSRLS PASSWORD '{V3}';
""",
        "t34_scram",
        False,
    ),
    (
        "infra/nginx/ops-tools/.htpasswd",
        """andi:{V}
linh.nguyen:{V2}
mehmet.k:{V3}
""",
        "t34_apr1",
        False,
    ),
    (
        "warehouse/scanners/dock-pc/autoinstall/user-data",
        """#cloud-config
autoinstall:
  version: 1
  locale: tr_TR.UTF-8
  keyboard: { layout: tr }
  identity:
    hostname: dock-hdk-01
    username: rantau
    password: "{V}"
  ssh:
    install-server: true
    allow-pw: false
  user-data:
    users:
      - name: operator
        lock_passwd: false
        hashed_passwd: "{V2}"
        shell: /bin/bash
""",
        "t34_sha512crypt",
        False,
    ),
    (
        "infra/pgbouncer/userlist.txt",
        """"dispatch" "{V}"
"pricing" "{V2}"
"dwh_reader" "{V3}"
""",
        "t34_pg_md5",
        False,
    ),
    (
        "deploy/k8s/payments-id/secrets.enc.yaml",
        """apiVersion: v1
kind: Secret
metadata:
  name: payments-gateway-keys
  namespace: payments-id
type: Opaque
stringData:
  MIDTRANS_SERVER_KEY: {V}
  XENDIT_SECRET_KEY: {V2}
  XENDIT_CALLBACK_TOKEN: {V3}
sops:
  age:
    - recipient: age1q8x2m3w4e5r6t7y8u9i0o1p2a3s4d5f6g7h8j9k0l1z2x3c4v5b6n7m8qq
  lastmodified: "2024-10-30T03:12:45Z"
  mac: ENC[AES256_GCM,data:Zm9vYmFyYmF6cXV4,iv:AAAAAAAAAAAAAAAAAAAAAA==,tag:AAAAAAAAAAAAAAAAAAAAAA==,type:str]
  unencrypted_suffix: _unencrypted
  version: 3.8.1
""",
        "t34_sops",
        False,
    ),
    (
        "deploy/k8s/notif/sealed-notif-provider-tokens.yaml",
        """apiVersion: bitnami.com/v1alpha1
kind: SealedSecret
metadata:
  name: notif-provider-tokens
  namespace: notif
spec:
  encryptedData:
    FCM_SERVER_KEY: {V}
    ONESIGNAL_REST_API_KEY: {V2}
  template:
    metadata:
      name: notif-provider-tokens
      namespace: notif
    type: Opaque
""",
        "t34_sealed",
        False,
    ),
    (
        "infra/ansible/group_vars/wms_tr/vault.yml",
        """# ansible-vault encrypt_string ile şifrelendi (vault id: tr-prod)
wms_sql_password: !vault |
  {IV}
wms_scanner_wifi_psk: !vault |
  {IV2}
""",
        "t34_ansible_vault",
        False,
    ),
    (
        "payments/tr-paytr-java/src/main/resources/application-prod.properties",
        """spring.datasource.url=jdbc:postgresql://pg-payments.tr.internal:5432/payments
spring.datasource.username=payments_tr
spring.datasource.password={V}
rantau.tr.paytr.merchant-key={V2}
rantau.tr.paytr.merchant-salt={V3}
jasypt.encryptor.algorithm=PBEWITHHMACSHA512ANDAES_256
jasypt.encryptor.password=${JASYPT_ENCRYPTOR_PASSWORD}
""",
        "t34_jasypt",
        False,
    ),
    (
        "services/pod-uploader/serverless.yml",
        """service: pod-uploader
provider:
  name: aws
  runtime: nodejs20.x
  region: ap-southeast-1
  environment:
    # KMS-encrypted with alias/rantau-pod, decrypted at cold start
    S3_SIGNING_SECRET_ENC: {V}
    OCR_API_KEY_ENC: {V2}
functions:
  upload:
    handler: src/handler.upload
    events:
      - httpApi: { path: /pod, method: post }
""",
        "t34_kms_blob",
        False,
    ),
    (
        "payments/payout-worker/db/sample_driver_bank_accounts.sql",
        """-- Contoh baris (staging). Nomor rekening dienkripsi oleh Vault transit (key: driver-bank).
INSERT INTO driver_bank_accounts (driver_id, bank_code, account_holder, account_number_enc) VALUES
  ('drv_1029384756', 'BCA', 'BUDI SANTOSO', '{V}'),
  ('drv_1029384801', 'MANDIRI', 'SITI RAHAYU', '{V2}'),
  ('drv_2039485712', 'BRI', 'AGUS SETIAWAN', '{V3}');
""",
        "t34_vault_transit",
        False,
    ),
    (
        "data/partner-sftp/keys/tokoserba_sftp.key",
        """{V}
""",
        "t34_encrypted_pem",
        False,
    ),
    (
        "deploy/k8s/dispatch/deployment.yaml",
        """apiVersion: apps/v1
kind: Deployment
metadata:
  name: dispatch
  namespace: dispatch
spec:
  replicas: 8
  selector:
    matchLabels: { app: dispatch }
  template:
    metadata:
      labels: { app: dispatch }
    spec:
      imagePullSecrets:
        - name: regcred-ghcr
      containers:
        - name: dispatch
          image: ghcr.io/rantau/dispatch:2024.11.3
          env:
            - name: DB_PASSWORD
              valueFrom:
                secretKeyRef:
                  name: {V}
                  key: password
            - name: REDIS_PASSWORD
              valueFrom:
                secretKeyRef:
                  name: {V2}
                  key: password
""",
        "t34_k8s_secret_name",
        False,
    ),
    (
        "deploy/k8s/payments-vn/externalsecret.yaml",
        """apiVersion: external-secrets.io/v1beta1
kind: ExternalSecret
metadata:
  name: payments-gateway-keys
  namespace: payments-vn
spec:
  refreshInterval: 1h
  secretStoreRef:
    kind: ClusterSecretStore
    name: aws-sm-ap-southeast-1
  target:
    name: payments-gateway-keys
  data:
    - secretKey: VNPAY_HASH_SECRET
      remoteRef:
        key: {V}
        property: hash_secret
    - secretKey: MOMO_SECRET_KEY
      remoteRef:
        key: {V2}
        property: secret_key
""",
        "t34_sm_path",
        False,
    ),
    (
        "infra/terraform/aws-vn/rds.tf",
        """resource "aws_db_instance" "dispatch_vn" {
  identifier             = "dispatch-vn-prod"
  engine                 = "postgres"
  engine_version         = "16.3"
  instance_class         = "db.r6g.xlarge"
  allocated_storage      = 500
  username               = "dispatch"
  password               = {V}
  db_subnet_group_name   = aws_db_subnet_group.private.name
  vpc_security_group_ids = [aws_security_group.db.id]
  deletion_protection    = true
}

resource "aws_elasticache_replication_group" "dispatch_vn" {
  replication_group_id = "dispatch-vn"
  description          = "geo index + driver state"
  node_type            = "cache.r6g.large"
  auth_token           = {V2}
  transit_encryption_enabled = true
}
""",
        "t34_tf_ref",
        False,
    ),
    (
        "deploy/helm/dispatch/templates/secret.yaml",
        """apiVersion: v1
kind: Secret
metadata:
  name: {{ include "dispatch.fullname" . }}
  labels:
    {{- include "dispatch.labels" . | nindent 4 }}
type: Opaque
stringData:
  REDIS_PASSWORD: {V}
  KAFKA_SASL_PASSWORD: {V2}
""",
        "t34_helm_ref",
        False,
    ),
    (
        ".github/workflows/release-driver-android.yml",
        """name: release-driver-android
on:
  workflow_dispatch:
    inputs:
      track: { description: "Play track", default: internal }

jobs:
  release:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-java@v4
        with: { distribution: temurin, java-version: "17" }
      - name: Decode keystore
        run: echo "${{ secrets.UPLOAD_KEYSTORE_B64 }}" | base64 -d > keys/rantau-driver-upload.jks
      - name: Build bundle
        env:
          KEYSTORE_PASSWORD: {V}
          KEY_PASSWORD: {V2}
          MAPBOX_DOWNLOADS_TOKEN: ${{ secrets.MAPBOX_DOWNLOADS_TOKEN }}
        run: ./gradlew :app:bundleProdRelease
""",
        "t34_ci_ref",
        False,
    ),
    (
        "services/pricing/.gitlab-ci.release.yml",
        """release:
  stage: release
  image: docker:26
  services: [docker:26-dind]
  script:
    - echo "{V}" | docker login -u "$CI_REGISTRY_USER" --password-stdin "$CI_REGISTRY"
    - docker build -t "$CI_REGISTRY_IMAGE:$CI_COMMIT_TAG" .
    - docker push "$CI_REGISTRY_IMAGE:$CI_COMMIT_TAG"
    - sonar-scanner -Dsonar.token="{V2}"
  rules:
    - if: $CI_COMMIT_TAG
""",
        "t34_gl_ref",
        False,
    ),
    (
        "mobile/driver-android/Jenkinsfile.release",
        """pipeline {
    agent { label 'android' }
    stages {
        stage('Upload to Nexus') {
            steps {
                withCredentials([usernamePassword(credentialsId: '{V}', usernameVariable: 'NEXUS_USER', passwordVariable: 'NEXUS_PASS')]) {
                    sh 'curl -fsS -u "$NEXUS_USER:$NEXUS_PASS" --upload-file app.aab "$NEXUS_URL/driver/${BUILD_NUMBER}/app.aab"'
                }
            }
        }
        stage('Play Store') {
            steps {
                withCredentials([file(credentialsId: '{V2}', variable: 'PLAY_JSON')]) {
                    sh 'bundle exec fastlane supply --json_key "$PLAY_JSON" --track internal'
                }
            }
        }
    }
}
""",
        "t34_jenkins_cred_id",
        False,
    ),
    (
        "warehouse/scanners/provision/Set-ScannerWifi.ps1",
        """# El terminallerine depo Wi-Fi profilini yükler (StageNow XML üretir)
param([Parameter(Mandatory)][string]$Depo)

$psk = {V}
$sqlPass = {V2}

$xml = (Get-Content .\\templates\\wifi.xml -Raw).Replace('__SSID__', "RNT-WMS-$Depo").Replace('__PSK__', $psk)
Set-Content -Path ".\\out\\wifi_$Depo.xml" -Value $xml -Encoding UTF8
Invoke-Sqlcmd -ServerInstance "wms-sql-tr" -Username wms_app -Password $sqlPass -Query "UPDATE Depolar SET WifiGuncellendi = GETDATE() WHERE Kod = '$Depo'"
""",
        "t34_ps_ref",
        False,
    ),
    (
        "data/scripts/ch_backup.sh",
        """#!/usr/bin/env bash
# Backup harian ClickHouse DWH ke OSS (Jakarta)
set -euo pipefail

CH_PASSWORD={V}
PG_PASSWORD={V2}

clickhouse-client --host ch-dwh.data.internal --user backup --password "$CH_PASSWORD" \\
  --query "BACKUP DATABASE rantau TO S3('https://rantau-dwh-backup.oss-ap-southeast-5.aliyuncs.com/ch/$(date +%F)')"
PGPASSWORD="$PG_PASSWORD" pg_dump -h pg-dispatch-ro.id.internal -U dwh_reader -Fc dispatch > "/backup/dispatch-$(date +%F).dump"
""",
        "t34_sh_ref",
        False,
    ),
    (
        "warehouse/wms/src/Rantau.Wms.Api/appsettings.Azure.json",
        """{
  "ConnectionStrings": {
    "Wms": "Server=wms-sql-tr.database.windows.net;Database=WMS;User Id=wms_app;Authentication=Active Directory Default"
  },
  "Secrets": {
    "SqlPassword": "{V}",
    "EsmsSecretKey": "{V2}"
  },
  "Scanner": { "SessionTimeoutMinutes": 480 }
}
""",
        "t34_kv_ref",
        False,
    ),
    (
        "data/spark/notebooks/driver_churn_features.scala",
        """// Databricks notebook source
// Fitur churn mitra driver (ID) — baca dari replika dispatch
val jdbcUrl = "jdbc:postgresql://pg-dispatch-ro.id.internal:5432/dispatch"
val props = new java.util.Properties()
props.setProperty("user", "dwh_reader")
props.setProperty("password", {V})

val trips = spark.read.jdbc(jdbcUrl, "trips", props)

// COMMAND ----------
val chPassword = {V2}
trips.groupBy("driver_id").count().write.format("clickhouse").option("password", chPassword).save()
""",
        "t34_dbx_ref",
        False,
    ),
    (
        "data/dbt/profiles.ci.yml",
        """rantau_dwh:
  target: ci
  outputs:
    ci:
      type: snowflake
      account: rantau-ap1
      user: DBT_CI
      password: {V}
      role: TRANSFORMER_CI
      warehouse: TRANSFORMING_XS
      database: ANALYTICS_CI
      schema: "ci_{{ env_var('CI_PIPELINE_ID', 'local') }}"
      threads: 4
    pg_local:
      type: postgres
      host: localhost
      user: dbt
      password: {V2}
      dbname: analytics
      schema: dev
""",
        "t34_dbt_ref",
        False,
    ),
    (
        "data/airflow/dags/support_tickets_daily.py",
        """from datetime import datetime

from airflow import DAG
from airflow.hooks.base import BaseHook
from airflow.models import Variable
from airflow.operators.python import PythonOperator


def pull_tickets(**ctx):
    token = {V}
    ch_password = {V2}
    from support_etl import zendesk_to_clickhouse

    zendesk_to_clickhouse(token=token, ch_password=ch_password, day=ctx["ds"])


with DAG(
    "support_tickets_daily",
    start_date=datetime(2024, 1, 1),
    schedule="0 2 * * *",
    catchup=False,
    tags=["support", "dwh"],
) as dag:
    PythonOperator(task_id="pull_tickets", python_callable=pull_tickets)
""",
        "t34_airflow_ref",
        False,
    ),
    (
        "data/streaming/connect/trip-events-s3-sink.properties",
        """name=trip-events-s3-sink
connector.class=io.confluent.connect.s3.S3SinkConnector
topics=trip.events
s3.bucket.name=rantau-trip-events-raw
s3.region=ap-southeast-1
config.providers=file,env
config.providers.file.class=org.apache.kafka.common.config.provider.FileConfigProvider
config.providers.env.class=org.apache.kafka.common.config.provider.EnvVarConfigProvider
consumer.override.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="${env:CONFLUENT_API_KEY}" password="{V}";
producer.override.sasl.password={V2}
flush.size=10000
""",
        "t34_kafka_ref",
        False,
    ),
    (
        "data/notebooks/eksplorasi_tarif_dinamis.ipynb",
        """{
 "cells": [
  {
   "cell_type": "markdown",
   "metadata": {},
   "source": ["# Eksplorasi tarif dinamis (surge) — Surabaya\\n"]
  },
  {
   "cell_type": "code",
   "execution_count": 3,
   "metadata": {},
   "outputs": [],
   "source": [
    "import getpass\\n",
    "import os\\n",
    "\\n",
    "import keyring\\n",
    "from sqlalchemy import create_engine\\n",
    "\\n",
    "pw = {V}\\n",
    "engine = create_engine(f\\"postgresql://dwh_reader:{pw}@pg-dispatch-ro.id.internal/dispatch\\")\\n"
   ]
  }
 ],
 "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
 "nbformat": 4,
 "nbformat_minor": 5
}
""",
        "t34_nb_ref",
        False,
    ),
    (
        "services/partner-gateway/src/main/resources/partner-keys/tokoserba.pub.pem",
        """{V}
""",
        "t34_public_pem",
        False,
    ),
    (
        "deploy/k8s/telematics/mosquitto-ca.yaml",
        """apiVersion: v1
kind: ConfigMap
metadata:
  name: mosquitto-ca
  namespace: telematics
data:
  ca.crt: |
    {IV}
  mosquitto.conf: |
    listener 8883
    cafile /mosquitto/certs/ca.crt
    certfile /mosquitto/certs/server.crt
    keyfile /mosquitto/certs/server.key
    require_certificate false
    password_file /mosquitto/config/passwd
""",
        "t34_cert",
        False,
    ),
    (
        "infra/ansible/roles/bastion/files/authorized_keys",
        """# SRE Jakarta
{V}
# SRE Ho Chi Minh City
{V2}
# SRE Istanbul
{V3}
""",
        "t34_ssh_pub",
        False,
    ),
    (
        ".sops.yaml",
        """creation_rules:
  - path_regex: deploy/k8s/payments-id/.*\\.enc\\.yaml$
    age: {V}
  - path_regex: deploy/k8s/payments-vn/.*\\.enc\\.yaml$
    age: {V2}
  - path_regex: deploy/k8s/payments-tr/.*\\.enc\\.yaml$
    age: {V3}
""",
        "t34_age_public",
        False,
    ),
    (
        "infra/ansible/roles/base/vars/apt_repos.yml",
        """apt_repositories:
  - name: docker
    url: https://download.docker.com/linux/ubuntu
    key_fingerprint: {V}
  - name: datadog
    url: https://apt.datadoghq.com
    key_fingerprint: {V2}
  - name: hashicorp
    url: https://apt.releases.hashicorp.com
    key_fingerprint: {V3}
""",
        "t34_gpg_fpr",
        False,
    ),
]

NEGATIVE += [
    (
        "platform/local/docker-compose.pinned.yml",
        """# Image dipin ke digest supaya build lokal sama dengan CI
services:
  postgres:
    image: postgis/postgis@{V}
    environment:
      POSTGRES_USER: dispatch
      POSTGRES_PASSWORD_FILE: /run/secrets/pg_password
    secrets: [pg_password]
  redis:
    image: redis@{V2}
  mosquitto:
    image: eclipse-mosquitto@{V3}
secrets:
  pg_password:
    file: ./secrets/pg_password.txt
""",
        "t34_image_digest",
        False,
    ),
    (
        "mobile/rider-rn/package-lock.json",
        """{
  "name": "rantau-rider",
  "version": "5.18.0",
  "lockfileVersion": 3,
  "requires": true,
  "packages": {
    "node_modules/@rantau/design-tokens": {
      "version": "2.4.1",
      "resolved": "https://npm.pkg.github.com/download/@rantau/design-tokens/2.4.1/3b9f0c1d",
      "integrity": "{V}"
    },
    "node_modules/xendit-js-node": {
      "version": "1.0.4",
      "resolved": "https://registry.npmjs.org/xendit-js-node/-/xendit-js-node-1.0.4.tgz",
      "integrity": "{V2}"
    },
    "node_modules/react-native-maps": {
      "version": "1.18.0",
      "resolved": "https://registry.npmjs.org/react-native-maps/-/react-native-maps-1.18.0.tgz",
      "integrity": "{V3}"
    }
  }
}
""",
        "t34_sri",
        False,
    ),
    (
        "mobile/driver-android/gradle/verification-metadata.xml",
        """<?xml version="1.0" encoding="UTF-8"?>
<verification-metadata xmlns="https://schema.gradle.org/dependency-verification">
   <configuration>
      <verify-metadata>true</verify-metadata>
      <verify-signatures>false</verify-signatures>
   </configuration>
   <components>
      <component group="com.mapbox.navigation" name="android" version="2.20.2">
         <artifact name="android-2.20.2.aar">
            <sha256 value="{V}" origin="Generated by Gradle"/>
         </artifact>
      </component>
      <component group="com.huawei.hms" name="push" version="6.12.0.300">
         <artifact name="push-6.12.0.300.aar">
            <sha256 value="{V2}" origin="Generated by Gradle"/>
         </artifact>
      </component>
   </components>
</verification-metadata>
""",
        "t34_sha256",
        False,
    ),
    (
        "telematics/ingest/go.sum",
        """github.com/eclipse/paho.mqtt.golang v1.4.3 {V}
github.com/eclipse/paho.mqtt.golang v1.4.3/go.mod {V2}
github.com/gorilla/websocket v1.5.3 {V3}
github.com/segmentio/kafka-go v0.4.47 {V4}
""",
        "t34_gosum",
        False,
    ),
    (
        "telematics/firmware/rnt-tracker/release/SHA256SUMS",
        """{V}  rnt-tracker-3.4.0-a7670.bin
{V2}  rnt-tracker-3.4.0-a7670.bin.sig
{V3}  rnt-tracker-3.4.0-ec200u.bin
""",
        "t34_sha256",
        False,
    ),
    (
        "services/dispatch/CHANGELOG.md",
        """# Changelog

## 2024.11.3
- Perbaikan radius pencarian driver saat hujan (surge cuaca) ({V})
- VN: dukung biển số xe máy định dạng mới ({V2})

## 2024.11.2
- TR: kurye eşleştirmede bölge sınırı düzeltmesi ({V3})
""",
        "t34_git_sha",
        False,
    ),
    (
        "telematics/inventory/trackers_jkt_2024q4.csv",
        """imei,model,sim_iccid_ref,vehicle_plate,installed_at,installer
{V},A7670-RNT,SIM-0412,B 4412 KZT,2024-10-02,PT Telematika Jaya
{V2},A7670-RNT,SIM-0413,B 3190 PQA,2024-10-02,PT Telematika Jaya
{V3},EC200U-RNT,SIM-0419,B 6021 UJR,2024-10-05,PT Telematika Jaya
""",
        "t34_imei",
        False,
    ),
    (
        "telematics/inventory/sim_cards_vn.yaml",
        """# SIM data Viettel cho tracker xe máy (HCM)
sims:
  - ref: SIM-VN-0101
    iccid: "{V}"
    apn: v-internet
  - ref: SIM-VN-0102
    iccid: "{V2}"
    apn: v-internet
  - ref: SIM-VN-0103
    iccid: "{V3}"
    apn: v-internet
""",
        "t34_iccid",
        False,
    ),
    (
        "fleet/onboarding/kamyonet_listesi_ist.csv",
        """plaka,sasi_no,marka,model,yil,depo
34 RNT 101,{V},Ford,Transit Custom,2022,HDK
34 RNT 102,{V2},Fiat,Doblo Cargo,2023,HDK
34 RNT 117,{V3},Renault,Kangoo,2021,TUZ
""",
        "t34_vin",
        False,
    ),
    (
        "services/dispatch/internal/plate/plate_test.go",
        """package plate

import "testing"

func TestNormalize(t *testing.T) {
	cases := []string{
		"{V}",
		"{V2}",
		"{V3}",
	}
	for _, c := range cases {
		if _, err := Normalize(c); err != nil {
			t.Errorf("Normalize(%q): %v", c, err)
		}
	}
}
""",
        "t34_plate",
        False,
    ),
    (
        "services/dispatch/testdata/trip_events.jsonl",
        """{"event":"trip.requested","trip_id":"{V}","rider_id":"rdr_8812093","city":"JKT","ts":"2024-11-05T01:02:03Z"}
{"event":"trip.accepted","trip_id":"{V}","driver_id":"drv_1029384756","request_id":"{V2}","ts":"2024-11-05T01:02:19Z"}
{"event":"trip.completed","trip_id":"{V}","fare_idr":38500,"request_id":"{V3}","ts":"2024-11-05T01:27:44Z"}
""",
        "t34_uuid",
        False,
    ),
    (
        "payments/laravel-gateway/tests/fixtures/xendit_invoice_paid.json",
        """{
  "id": "{V}",
  "external_id": "RNT-ID-2024110500981",
  "user_id": "{V2}",
  "is_high": false,
  "payment_method": "EWALLET",
  "status": "PAID",
  "merchant_name": "Rantau",
  "amount": 125000,
  "paid_amount": 125000,
  "payment_channel": "OVO",
  "payment_id": "{V3}",
  "paid_at": "2024-11-05T10:14:51.000Z",
  "currency": "IDR"
}
""",
        "t34_object_id",
        False,
    ),
    (
        "support/exports/eskalasi_refund_oktober.csv",
        """no_tiket,order_id,negara,alasan,nominal,status
ZD-884120,{V},ID,Driver tidak datang,38500,REFUND_OK
ZD-884133,{V2},VN,Tính phí sai,54000,PENDING
ZD-884187,{V3},TR,Paket hasarlı,420,REFUND_OK
""",
        "t34_order_id",
        False,
    ),
    (
        "warehouse/scanners/mdm/devices_cikarang.json",
        """{
  "site": "CKR",
  "devices": [
    { "serial": "{V}", "model": "TC52", "os": "A11", "user_group": "picker" },
    { "serial": "{V2}", "model": "TC58", "os": "A13", "user_group": "packer" },
    { "serial": "{V3}", "model": "MC3300", "os": "A11", "user_group": "receiving" }
  ]
}
""",
        "t34_serial",
        False,
    ),
    (
        "docs/runbook/id/PAY-ID-004-rotasi-server-key-midtrans.md",
        """# PAY-ID-004: Rotasi server key Midtrans

1. Login ke Dashboard Midtrans (akun `payments-admin@rantau.co.id`, MFA wajib).
2. Settings > Access Keys > **Regenerate** server key.
3. Simpan key baru ke Vault:

```bash
vault kv patch secret/payments/id/midtrans server_key='{V}'
```

4. Restart adapter: `kubectl -n payments-id rollout restart deploy/midtrans-adapter`
5. Uji transaksi Rp1.000 pakai QRIS; pastikan notifikasi masuk dengan `signature_key` valid.

> Jangan pernah menempelkan key asli di Slack/Jira. Tulis saja `{V2}` kalau perlu contoh.
""",
        "t34_ph_id",
        False,
    ),
    (
        "docs/runbook/vi/PAY-VN-002-doi-hash-secret-vnpay.md",
        """# PAY-VN-002: Đổi HASH_SECRET của VNPay

1. Yêu cầu VNPay cấp lại secret qua email hỗ trợ merchant (kèm mã TMN `RANTAUV1`).
2. Cập nhật AWS Secrets Manager `vn-prod/payments/vnpay`:

```bash
aws secretsmanager put-secret-value --secret-id vn-prod/payments/vnpay \\
  --secret-string '{"tmn_code":"RANTAUV1","hash_secret":"{V}"}'
```

3. Chờ External Secrets đồng bộ (tối đa 1 giờ) hoặc annotate để đồng bộ ngay.
4. Kiểm tra giao dịch thử; nếu `vnp_ResponseCode=97` (sai checksum) thì secret chưa đúng.

Mật khẩu tài khoản merchant portal: `{V2}` (xem 1Password, vault "Payments VN").
""",
        "t34_ph_vi",
        False,
    ),
    (
        "docs/runbook/tr/NOTIF-TR-01-netgsm-sifre-degisimi.md",
        """# NOTIF-TR-01: Netgsm API şifresi değişimi

Netgsm alt kullanıcı şifresi 90 günde bir değişmelidir.

1. Netgsm paneli > Alt Kullanıcılar > `api_rantau` > Şifre Değiştir.
2. Yeni şifreyi GCP Secret Manager'a yazın:

```bash
printf '%s' '{V}' | gcloud secrets versions add netgsm-password --data-file=-
```

3. `sms-router` podlarını yeniden başlatın.
4. Test SMS'i gönderin: `./scripts/test_sms.sh +905321234567`

Not: Bu dokümanda şifre yerine `{V2}` yazılır; gerçek değer yalnızca Secret Manager'da.
""",
        "t34_ph_tr",
        False,
    ),
    (
        "services/partner-gateway/README.md",
        """# partner-gateway

Receives order callbacks from B2B partners and forwards them to dispatch.

## Configuration

| Variable | Example | Notes |
|---|---|---|
| `PARTNER_TOKOSERBA_SECRET` | `{V}` | HMAC secret shared with the partner |
| `PARTNER_HANGVIET_SECRET` | `{V2}` | ask #partner-integrations |
| `DATABASE_URL` | `postgres://partner:{V3}@localhost/partner` | local only |

Run locally with `make run` after copying `.env.example` to `.env`.
""",
        "t34_ph_en",
        False,
    ),
    (
        "support/chat-exports/slack/sre-vn/2024-09-03.json",
        """[
  {
    "type": "message",
    "user": "U04TUANSRE",
    "text": "ai có mật khẩu redis dispatch VN không? cần check bigkeys gấp",
    "ts": "1725336001.100200"
  },
  {
    "type": "message",
    "user": "U02LINHSRE",
    "text": "redis-cli -a '{V}' --bigkeys — nhớ lấy từ Vault nha, mình đã ẩn trong tin nhắn này",
    "ts": "1725336088.100900"
  },
  {
    "type": "message",
    "user": "U01SECBOT",
    "text": "Tin nhắn phía trên chứa bí mật và đã được thay bằng {V2} tự động.",
    "ts": "1725336090.101000"
  }
]
""",
        "t34_redacted",
        False,
    ),
    (
        "support/tickets/export/PAY-ID-1187.md",
        """**PAY-ID-1187 — Callback Xendit ditolak (401) sejak 10:20 WIB**

*Pelapor:* dimas.s · *Prioritas:* P2

> Log adapter: `x-callback-token mismatch (got={V}, expected={V2})`

**Komentar (ayu.payments):** Token di dashboard Xendit sudah dirotasi oleh tim finance tapi
belum diupdate di Vault. Sudah saya update; nilai di log sengaja disensor oleh logger.

**Status:** Selesai
""",
        "t34_redacted",
        False,
    ),
    (
        "docs/onboarding/aws-cli.md",
        """# Setup AWS CLI (tim data)

Kami memakai SSO (`aws configure sso`), **bukan** access key statis. Contoh format file
credentials dari dokumentasi AWS, hanya sebagai ilustrasi:

```ini
[example]
{V}
```

Kalau melihat key `AKIA...` asli di repo, laporkan ke #security dan rotasi segera.
""",
        "t34_aws_example_pair",
        False,
    ),
    (
        "services/dispatch/docs/local-dev.md",
        """# Local development

Start the stack with `docker compose -f platform/local/docker-compose.yml up -d`, then:

```bash
export DATABASE_URL=postgres://dispatch:{V}@localhost:5432/dispatch?sslmode=disable
export REDIS_URL=redis://:{V2}@localhost:6379/0
go run ./cmd/dispatch
```

For the docs site we use the fictional host: `postgres://app:{V3}@db.example.com:5432/app`.
""",
        "t34_doc_pw",
        False,
    ),
    (
        "ops/alerting/README.md",
        """# alerting

`payment_watchdog.py` posts to Slack. Set the webhook URL per country in the
`ALERT_WEBHOOK_ID` / `ALERT_WEBHOOK_VN` env vars. Format (from Slack's docs):

```
{V}
```

Never commit a real webhook URL; Slack revokes leaked ones automatically.
""",
        "t34_slack_sample_webhook",
        False,
    ),
    (
        "payments/vn-checkout/tests/conftest.py",
        """import pytest


@pytest.fixture(autouse=True)
def fake_gateway_secrets(monkeypatch):
    # Clearly fake values: the gateways are mocked with responses in every test.
    monkeypatch.setenv("VNPAY_HASH_SECRET", "{V}")
    monkeypatch.setenv("MOMO_SECRET_KEY", "{V2}")
    monkeypatch.setenv("ZALOPAY_KEY2", "{V3}")
""",
        "t34_fake_token",
        False,
    ),
    (
        "services/auth/config/password_policy.yaml",
        """# Kebijakan kata sandi back office & portal merchant (ISO 27001 A.9.4.3)
password_policy:
  min_length: {V}
  max_age_days: {V2}
  history: 5
  require_mfa: true
  lockout:
    max_attempts: {V3}
    duration: 15m
""",
        "t34_policy_num",
        False,
    ),
    (
        "services/auth/config/tokens.toml",
        """[tokens.driver]
access_ttl = "{V}"
refresh_ttl = "{V2}"
rotate_refresh = true

[tokens.rider]
access_ttl = "{V3}"
refresh_ttl = "720h"
""",
        "t34_duration",
        False,
    ),
    (
        "services/auth/config/oauth_clients.yaml",
        """clients:
  - client_id: merchant-portal
    grant_types: [{V}, refresh_token]
    redirect_uris: ["https://merchant.rantau.co.id/callback"]
  - client_id: partner-tokoserba
    grant_types: [{V2}]
    token_endpoint_auth_method: private_key_jwt
  - client_id: cs-backoffice
    grant_types: [{V3}]
""",
        "t34_grant_type",
        False,
    ),
    (
        "services/partner-gateway/config/headers.yaml",
        """inbound:
  xendit:
    auth_header: {V}
  momo:
    signature_header: {V2}
  partners:
    signature_header: X-Rantau-Signature
    api_key_header: {V3}
""",
        "t34_header_name",
        False,
    ),
    (
        "services/geo-index/config/prod.toml",
        """[redis]
url = "redis://redis-geo.id.internal:6379/2"
password_file = "{V}"

[postgres]
host = "pg-dispatch.id.internal"
user = "geo_index"
password_file = "{V2}"
pool_size = 16
""",
        "t34_secret_path",
        False,
    ),
    (
        "telematics/firmware/rnt-tracker/src/nvs_keys.h",
        """#pragma once

/* Nama key di NVS (bukan nilai). Nilai ditulis saat provisioning di pabrik. */
#define NVS_NS              "rnt"
#define NVS_KEY_MQTT_PASS   "{V}"
#define NVS_KEY_MQTT_USER   "{V2}"
#define NVS_KEY_OTA_TOKEN   "{V3}"
""",
        "t34_nvs_key",
        False,
    ),
    (
        "notif/email/templates/receipt_vi.json",
        """{
  "template": "receipt_vi",
  "subject": "Hóa đơn chuyến đi của bạn",
  "logo": { "mime": "image/png", "data": "{V}" },
  "footer": "Rantau Việt Nam — Không trả lời email này."
}
""",
        "t34_png_b64",
        False,
    ),
    (
        "deploy/k8s/notif/push-service.yaml",
        """apiVersion: apps/v1
kind: Deployment
metadata:
  name: push-service
  namespace: notif
spec:
  template:
    spec:
      containers:
        - name: push-service
          image: ghcr.io/rantau/push-service:1.42.0
          envFrom:
            - secretRef:
                name: {V}
          volumeMounts:
            - name: apns-key
              mountPath: /etc/apns
              readOnly: true
      volumes:
        - name: apns-key
          secret:
            secretName: {V2}
""",
        "t34_k8s_secret_name",
        False,
    ),
    (
        "web/checkout-vn/src/pages/ThanhToan.tsx",
        """import { useState } from 'react';

export default function ThanhToan() {
  const [err, setErr] = useState<string | null>(null);
  return (
    <form onSubmit={(e) => { e.preventDefault(); setErr('{V}'); }}>
      <label htmlFor="pin">Mã PIN ví Rantau</label>
      <input id="pin" type="password" inputMode="numeric" maxLength={6} />
      <small>{'{V2}'}</small>
      {err && <p role="alert">{err}</p>}
    </form>
  );
}
""",
        "t34_i18n_vi",
        False,
    ),
    (
        "support/tickets/export/WMS-ID-220.txt",
        """Tiket WMS-ID-220 — Scanner gudang Cakung tidak bisa login
Dibuat: 2024-07-19 06:55 WIB oleh rudi.h (shift pagi)

rudi.h: Semua TC52 di area inbound muncul pesan "Akun terkunci, hubungi supervisor".
nanda.it: Akun wms_scanner terkunci setelah 5 kali gagal. Sudah di-unlock, password direset.
          Password baru: {V} (sudah dikirim via WhatsApp ke supervisor, jangan ditulis di tiket).
rudi.h: OK sudah bisa. Terima kasih.
""",
        "t34_redacted",
        False,
    ),
]

TEMPLATES: list[evalset.Template] = POSITIVE + NEGATIVE
