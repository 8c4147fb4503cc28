"""Blind part ``heldout28``: a media and broadcasting group, Grupo Marejada Media (GMM), with
its TV channels (Canal Marea, Marea 24h news), the MarePlay streaming service, the Ràdio Marea
network in Catalonia, the Ressò podcast hosting platform, MareaSports live data, a rights and
distribution desk, the Memòria Viva archive digitisation project, and studios in Ciudad de
México (Estudios Marejada CDMX) and Spain (Madrid, Sant Cugat). Files are TV playout and
automation config (automation INI, as-run logs, IPMI inventories, SNMP group_vars, PowerShell
as-run backups), newsroom systems (WordPress wp-config and users, wire-agency ingest settings,
ENPS runbooks, DeepL and speech-to-text clients, Slack and Telegram bots, Slack chat exports),
the streaming platform (Spring Boot catalogue API, Go playback token signer, Rust transcoder,
Stripe, Mercado Pago, Conekta and Redsys payments, DRM key files and DASH manifests, Mux live
streams, SRT gateways, OBS profiles, YouTube Data API sync, Kubernetes, Helm, GitHub Actions,
FCM push, web and iOS config), the CDN (Akamai .edgerc, EdgeAuth and property JSON, Fastly
Terraform, Cloudflare purges, CloudFront signing keys, nginx secure_link and TLS tickets), ad
tech and measurement (Google Ad Manager service accounts, audience upload and Kafka stream
config, Nielsen SDK set-up, ads.txt, VAST, hashed audience segments), podcast hosting (Rails
storage, credentials and mailer config, Apple Podcasts .p8 keys, Spotify sync, private RSS
feeds, RSS, seeds and fixtures, API docs), live sports data (Sportradar config, fixtures, feed
docs, a Go feed relay's Dockerfiles and go.sum), rights management (.NET contracts service,
Aspera and FileZilla delivery, known_hosts, PGP keys, EIDR and ISRC catalogues, checksums), the
radio network (Icecast, htpasswd, Liquidsoap, RDS encoder batch scripts, studio guides in
Catalan, Android strings), archive digitisation (Archivematica, BagIt manifests, Backblaze B2
and Azure Blob sync, fixity notebooks, PostgreSQL roles, Django fixtures), and shared
infrastructure (AWS credentials, GitLab CI, Jenkins, Terraform, Alertmanager, Teams and Google
Chat webhooks, Datadog, Elastic, Vault, SSH and TLS material, cloud-init, MySQL grants,
password policy, Jira-style tickets, SMB mounts and OpenVPN profiles in the studios), with
docs in English, Spanish and Catalan. Written blind (without seeing the scanner, its rules or
other parts' templates).

Look-alikes sit in the same kinds of files under the same key names: password hashes (bcrypt,
phpass, SHA-512 crypt, Apache apr1, Django PBKDF2, MySQL native and PostgreSQL md5/SCRAM
verifiers), values encrypted at rest (SOPS, Ansible Vault, sealed secrets, Jasypt, AWS KMS
blobs, DPAPI, Jenkins, Rails credentials, encrypted PEM keys), references to environment
variables and secret stores in each language and tool, placeholders and redactions in English,
Spanish and Catalan, public material (certificates, public, SSH host and PGP keys, Stripe
publishable keys, OAuth client ids, Algolia search-only keys, Mux environment keys and playback
ids, Nielsen app ids), identifiers shaped like secrets (DRM key ids, EIDR and ISRC codes, SMPTE
UMIDs, Fastly service ids, Cloudflare zone and account ids, Spotify client ids, ads.txt
certification ids, GA4 ids, CP codes, UUIDs, git SHAs, image digests, fixity checksums and
lockfile hashes), UI text about passwords, documented example credentials and credentials on
documentation hosts, masked tokens in tickets, and test values that say they are fake.
"""

from __future__ import annotations

import base64
import hashlib
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
PW_SYMBOLS = "!#%*-_=+.@^~"
CRYPT64 = "./" + ALNUM


class Heldout28Values(evalset.Values):
    """Value generators of the heldout28 part; every name starts with ``h28_``."""

    def __init__(self, seed: int, flavour: str) -> None:
        super().__init__(seed, flavour)
        self.words = [
            "antena",
            "bobina",
            "claqueta",
            "cabina",
            "platea",
            "jingle",
            "foco",
            "guion",
            "cinta",
            "atril",
            "directo",
            "mezcla",
            "faro",
            "tramoya",
            "fonoteca",
            "oleaje",
        ]
        self.users = [
            "playout",
            "newsroom",
            "cdn_ops",
            "adserver",
            "podcast",
            "sportsfeed",
            "rights",
            "radio",
            "archivo",
            "encoder",
            "transcoder",
            "mam",
        ]

    # ------------------------------------------------------------------ helpers (not slots)
    def h28_util_b64(self, n: int, urlsafe: bool = False, pad: bool = True) -> str:
        raw = self.rng.randbytes(n)
        text = (base64.urlsafe_b64encode(raw) if urlsafe else base64.b64encode(raw)).decode()
        return text if pad else text.rstrip("=")

    def h28_util_armor(self, label: str, nbytes: int, width: int = 64) -> str:
        body = base64.b64encode(self.rng.randbytes(nbytes)).decode()
        rows = [body[i : i + width] for i in range(0, len(body), width)]
        return f"-----BEGIN {label}-----\n" + "\n".join(rows) + f"\n-----END {label}-----"

    def h28_util_crc_token(self, prefix: str) -> str:
        body = self.s(30, ALNUM)
        crc = zlib.crc32(body.encode())
        check = ""
        while crc:
            crc, rest = divmod(crc, 62)
            check = B62[rest] + check
        return f"{prefix}_{body}{check.rjust(6, '0')}"

    def h28_util_uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def h28_util_aws_id(self) -> str:
        return self.pick(["AKIA", "AKIA", "ASIA"]) + self.s(16, string.ascii_uppercase + "234567")

    def h28_util_aws_secret(self) -> str:
        return self.s(1, ALNUM) + self.s(39, ALNUM + "/+")

    # ------------------------------------------------------------------ positives: passwords
    def h28_pw(self) -> str:
        shape = self.rng.randrange(6)
        word = self.pick(self.words)
        if shape == 0:
            return word.capitalize() + str(self.rng.randrange(10, 9999)) + self.pick(list("!#%*."))
        if shape == 1:
            return self.s(1, string.ascii_letters) + self.s(
                self.rng.randrange(13, 21), ALNUM + PW_SYMBOLS
            )
        if shape == 2:
            other = self.pick([w for w in self.words if w != word])
            return f"{word.capitalize()}-{other.capitalize()}-{self.s(2, DIGITS)}"
        if shape == 3:
            return "Mrj" + self.s(11, ALNUM) + self.pick(list("!#%@"))
        if shape == 4:
            return self.s(20, ALNUM)
        leet = word.replace("a", "4").replace("o", "0").replace("e", "3").replace("i", "1")
        return leet[0].upper() + leet[1:] + "_" + self.s(4, DIGITS) + "!"

    def h28_weak_pw(self) -> str:
        shape = self.rng.randrange(4)
        if shape == 0:
            return self.pick(
                [
                    "Marejada2023",
                    "Playout123",
                    "radio1234",
                    "Admin123!",
                    "Estudio01",
                    "Directo2024",
                    "marea123",
                    "Qwerty2022!",
                    "Barix1234",
                ]
            )
        if shape == 1:
            return "Marea" + str(self.rng.randrange(2016, 2026)) + self.pick(["", "!", "#", "."])
        if shape == 2:
            return self.pick(self.words) + self.pick(["1", "123", "2024", "!", "01"])
        return self.pick(["Verano", "Invierno", "Primavera", "Otono", "Estiu", "Hivern"]) + str(
            self.rng.randrange(2019, 2026)
        )

    def h28_url_pw(self) -> str:
        if self.rng.randrange(2):
            return self.pick(self.words).capitalize() + self.s(4, DIGITS)
        return self.s(1, string.ascii_letters) + self.s(self.rng.randrange(13, 22), ALNUM + "-_.")

    def h28_icecast_pw(self) -> str:
        if self.rng.randrange(2):
            return self.s(self.rng.randrange(12, 19), ALNUM)
        return "-".join(self.pick(self.words) for _ in range(3)) + self.s(2, DIGITS)

    def h28_snmp_community(self) -> str:
        if self.rng.randrange(2):
            return "gmm" + self.s(10, LOWNUM)
        return (
            self.pick(self.words).capitalize() + self.s(3, DIGITS) + self.pick(["rw", "RW", "ro"])
        )

    def h28_b64_pw(self) -> str:
        return base64.b64encode(self.h28_pw().encode()).decode()

    def h28_wp_salt(self) -> str:
        alphabet = ALNUM + "!#$%&()*+,-./:;<=>?@[]^_`{|}~ "
        return self.s(64, alphabet)

    # ------------------------------------------------------------------ positives: keys and tokens
    def h28_aws_pair_ini(self) -> str:
        return (
            f"aws_access_key_id = {self.h28_util_aws_id()}\n"
            f"aws_secret_access_key = {self.h28_util_aws_secret()}"
        )

    def h28_aws_pair_yaml(self) -> str:
        return (
            f"access_key_id: {self.h28_util_aws_id()}\n"
            f"secret_access_key: {self.h28_util_aws_secret()}"
        )

    def h28_aws_pair_ci(self) -> str:
        return (
            f"AWS_ACCESS_KEY_ID: {self.h28_util_aws_id()}\n"
            f"AWS_SECRET_ACCESS_KEY: {self.h28_util_aws_secret()}"
        )

    def h28_edgerc(self) -> str:
        def akab() -> str:
            return f"akab-{self.s(16, LOWNUM)}-{self.s(16, LOWNUM)}"

        return (
            f"client_secret = {self.h28_util_b64(32)}\n"
            f"host = {akab()}.luna.akamaiapis.net\n"
            f"access_token = {akab()}\n"
            f"client_token = {akab()}"
        )

    def h28_hex32(self) -> str:
        return self.s(32, HEX)

    def h28_hex40(self) -> str:
        return self.s(40, HEX)

    def h28_hex64(self) -> str:
        return self.s(64, HEX)

    def h28_agency_key(self) -> str:
        return self.s(32, ALNUM)

    def h28_fastly(self) -> str:
        return self.s(32, URLSAFE)

    def h28_cloudflare(self) -> str:
        return self.s(40, URLSAFE)

    def h28_rsa_key(self) -> str:
        return self.h28_util_armor("RSA PRIVATE KEY", 48 * 25)

    def h28_pkcs8(self) -> str:
        return self.h28_util_armor("PRIVATE KEY", 48 * 26)

    def h28_openssh(self) -> str:
        head = b"openssh-key-v1\x00\x00\x00\x00\x04none\x00\x00\x00\x04none\x00\x00\x00\x00"
        body = base64.b64encode(head + self.rng.randbytes(330)).decode()
        rows = [body[i : i + 70] for i in range(0, len(body), 70)]
        return (
            "-----BEGIN OPENSSH PRIVATE KEY-----\n"
            + "\n".join(rows)
            + "\n-----END OPENSSH PRIVATE KEY-----"
        )

    def h28_ec_p8(self) -> str:
        return self.h28_util_armor("PRIVATE KEY", 138)

    def h28_gcp_pem(self) -> str:
        return self.h28_pkcs8().replace("\n", "\\n") + "\\n"

    def h28_pgp_private(self) -> str:
        body = base64.b64encode(self.rng.randbytes(48 * 18)).decode()
        rows = [body[i : i + 64] for i in range(0, len(body), 64)]
        check = base64.b64encode(self.rng.randbytes(3)).decode()
        return (
            "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\n"
            + "\n".join(rows)
            + f"\n={check}\n-----END PGP PRIVATE KEY BLOCK-----"
        )

    def h28_stream_key(self) -> str:
        return "-".join(self.s(4, LOWNUM) for _ in range(5))

    def h28_srt_pass(self) -> str:
        return self.s(self.rng.randrange(16, 33), ALNUM + "-_")

    def h28_mux_secret(self) -> str:
        return self.h28_util_b64(56, pad=False)

    def h28_jwt_secret(self) -> str:
        shape = self.rng.randrange(3)
        if shape == 0:
            return self.s(64, HEX)
        if shape == 1:
            return self.h28_util_b64(48)
        return self.s(48, URLSAFE)

    def h28_content_key(self) -> str:
        return self.s(32, HEX)

    def h28_stripe(self) -> str:
        return self.pick(["sk_live_51", "rk_live_51"]) + self.s(97, ALNUM)

    def h28_mercadopago(self) -> str:
        return f"APP_USR-{self.s(16, DIGITS)}-{self.s(6, DIGITS)}-{self.s(32, HEX)}-{self.s(9, DIGITS)}"

    def h28_conekta(self) -> str:
        return "key_" + self.s(24, ALNUM)

    def h28_redsys_key(self) -> str:
        return self.h28_util_b64(24)

    def h28_sportradar(self) -> str:
        return self.s(40, ALNUM)

    def h28_telegram(self) -> str:
        return f"{self.rng.randrange(10**9, 8 * 10**9)}:AA{self.s(33, URLSAFE)}"

    def h28_slack_bot(self) -> str:
        return f"xoxb-{self.s(12, DIGITS)}-{self.s(13, DIGITS)}-{self.s(24, ALNUM)}"

    def h28_slack_webhook(self) -> str:
        return (
            f"https://hooks.slack.com/services/T{self.s(10, UPNUM)}/B{self.s(10, UPNUM)}/"
            f"{self.s(24, ALNUM)}"
        )

    def h28_teams_webhook(self) -> str:
        ids = [self.h28_util_uuid() for _ in range(3)]
        return (
            f"https://marejada.webhook.office.com/webhookb2/{ids[0]}@{ids[1]}"
            f"/IncomingWebhook/{self.s(32, HEX)}/{ids[2]}/V2{self.s(43, URLSAFE)}"
        )

    def h28_gchat_webhook(self) -> str:
        return (
            f"https://chat.googleapis.com/v1/spaces/AAAA{self.s(7, URLSAFE)}/messages"
            f"?key=AIzaSy{self.s(33, URLSAFE)}&token={self.s(43, URLSAFE)}%3D"
        )

    def h28_github(self) -> str:
        return self.h28_util_crc_token(self.pick(["ghp", "ghp", "gho"]))

    def h28_gitlab(self) -> str:
        return "glpat-" + self.s(20, URLSAFE)

    def h28_openai(self) -> str:
        return f"sk-proj-{self.s(58, URLSAFE)}T3BlbkFJ{self.s(58, URLSAFE)}"

    def h28_deepl(self) -> str:
        return self.h28_util_uuid() + self.pick([":fx", ""])

    def h28_google_api(self) -> str:
        return "AIza" + self.s(35, URLSAFE)

    def h28_azure_conn(self) -> str:
        return (
            "DefaultEndpointsProtocol=https;AccountName=gmmarchivo"
            f"{self.s(4, string.ascii_lowercase)};AccountKey={self.h28_util_b64(64)};"
            "EndpointSuffix=core.windows.net"
        )

    def h28_b2_key(self) -> str:
        return "K00" + self.s(1, "1234") + self.s(27, ALNUM)

    def h28_fcm(self) -> str:
        return f"AAAA{self.s(7, URLSAFE)}:APA91b{self.s(134, URLSAFE)}"

    def h28_es_key(self) -> str:
        return base64.b64encode(f"{self.s(20, URLSAFE)}:{self.s(22, URLSAFE)}".encode()).decode()

    def h28_vault_token(self) -> str:
        if self.rng.randrange(2):
            return "hvs." + self.s(24, ALNUM)
        return "hvs.CAESI" + self.s(86, URLSAFE)

    def h28_feed_token(self) -> str:
        return self.s(32, URLSAFE)

    def h28_sendgrid(self) -> str:
        return f"SG.{self.s(22, URLSAFE)}.{self.s(43, URLSAFE)}"

    def h28_atlassian(self) -> str:
        return "ATATT3xFfGF0" + self.s(171, URLSAFE) + "=" + self.s(8, HEXU)

    def h28_npm(self) -> str:
        return self.h28_util_crc_token("npm")

    # ------------------------------------------------------------------ negatives: hashes
    def h28_bcrypt(self) -> str:
        return self.pick(["$2a$12$", "$2b$10$", "$2y$10$"]) + self.s(53, CRYPT64)

    def h28_phpass(self) -> str:
        return "$P$B" + self.s(30, CRYPT64)

    def h28_sha512crypt(self) -> str:
        return f"$6$rounds=656000${self.s(16, CRYPT64)}${self.s(86, CRYPT64)}"

    def h28_apr1(self) -> str:
        return f"$apr1${self.s(8, CRYPT64)}${self.s(22, CRYPT64)}"

    def h28_pbkdf2(self) -> str:
        return f"pbkdf2_sha256$870000${self.s(22, ALNUM)}${self.h28_util_b64(32)}"

    def h28_mysql_hash(self) -> str:
        return "*" + self.s(40, HEXU)

    def h28_pg_verifier(self) -> str:
        if self.rng.randrange(2):
            return "md5" + self.s(32, HEX)
        return (
            f"SCRAM-SHA-256$4096:{self.h28_util_b64(16)}"
            f"${self.h28_util_b64(32)}:{self.h28_util_b64(32)}"
        )

    # ------------------------------------------------------------------ negatives: encrypted
    def h28_sops(self) -> str:
        data = self.h28_util_b64(self.rng.randrange(12, 40))
        iv = self.h28_util_b64(32)
        tag = self.h28_util_b64(16)
        return f"ENC[AES256_GCM,data:{data},iv:{iv},tag:{tag},type:str]"

    def h28_ansible_vault(self) -> str:
        body = self.s(80 * 5 + 40, HEX)
        rows = [body[i : i + 80] for i in range(0, len(body), 80)]
        return "$ANSIBLE_VAULT;1.1;AES256\n" + "\n".join(rows)

    def h28_sealed(self) -> str:
        return "AgB" + self.h28_util_b64(self.rng.randrange(300, 420))

    def h28_jasypt(self) -> str:
        return "ENC(" + self.h28_util_b64(self.rng.randrange(24, 48)) + ")"

    def h28_kms_blob(self) -> str:
        return "AQICAHh" + self.h28_util_b64(self.rng.randrange(150, 200))

    def h28_dpapi(self) -> str:
        return "AQAAANCMnd8BFdERjHoAwE/Cl+sBAAAA" + self.h28_util_b64(self.rng.randrange(160, 230))

    def h28_jenkins_secret(self) -> str:
        return "{AQAAABAAAAAQ" + self.h28_util_b64(self.rng.randrange(36, 60)) + "}"

    def h28_rails_enc(self) -> str:
        return f"{self.h28_util_b64(220)}--{self.h28_util_b64(12)}--{self.h28_util_b64(16)}"

    def h28_legacy_enc_key(self) -> str:
        body = base64.b64encode(self.rng.randbytes(48 * 14)).decode()
        rows = [body[i : i + 64] for i in range(0, len(body), 64)]
        return (
            "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n"
            f"DEK-Info: AES-256-CBC,{self.s(32, HEXU)}\n\n"
            + "\n".join(rows)
            + "\n-----END RSA PRIVATE KEY-----"
        )

    # ------------------------------------------------------------------ negatives: references
    def h28_ref_py(self) -> str:
        return self.pick(
            [
                'os.environ["AGENCY_CLIENT_SECRET"]',
                'os.getenv("ARCHIVEMATICA_API_KEY")',
                "settings.XANDR_PASSWORD",
                'secrets_client.get_secret_value(SecretId="gmm/prod/agency")["SecretString"]',
                'keyring.get_password("gmm-archivo", "fixity")',
                'env.str("DB_PASSWORD")',
            ]
        )

    def h28_ref_js(self) -> str:
        return self.pick(
            [
                "process.env.DEEPL_AUTH_KEY",
                "process.env['SPORTS_FEED_PASSWORD'] ?? ''",
                "config.get('deepl.authKey')",
                "await getSecret('deepl-auth-key')",
                "import.meta.env.VITE_MUX_ENV_KEY",
            ]
        )

    def h28_ref_go(self) -> str:
        return self.pick(
            [
                'os.Getenv("PLAYBACK_SIGNING_KEY")',
                "cfg.Feed.Password",
                'viper.GetString("sportradar.api_key")',
                'mustEnv("TELEGRAM_BOT_TOKEN")',
            ]
        )

    def h28_ref_java(self) -> str:
        return self.pick(
            [
                'System.getenv("MAREPLAY_DB_PASSWORD")',
                'env.getRequiredProperty("spring.datasource.password")',
                "props.getPassword()",
                'secretsClient.getSecret("mareplay-db").getValue()',
            ]
        )

    def h28_ref_spring(self) -> str:
        return self.pick(
            [
                "${MAREPLAY_DB_PASSWORD}",
                "${vault.mareplay.db-password}",
                "${DB_PASSWORD:}",
                "${sm://mareplay-db-password}",
            ]
        )

    def h28_ref_cs(self) -> str:
        return self.pick(
            [
                'builder.Configuration["Rights:DbPassword"]',
                'Environment.GetEnvironmentVariable("RIGHTS_DB_PASSWORD")',
                "options.Value.Password",
                '(await secretClient.GetSecretAsync("rights-db-password")).Value.Value',
            ]
        )

    def h28_ref_php(self) -> str:
        return self.pick(
            [
                "getenv('WORDPRESS_DB_PASSWORD')",
                "$_ENV['WP_DB_PASSWORD']",
                "env('APIFOOTBALL_KEY')",
                "$_SERVER['REDSYS_MERCHANT_KEY']",
            ]
        )

    def h28_ref_rb(self) -> str:
        return self.pick(
            [
                "<%= ENV['RESSO_S3_SECRET'] %>",
                "<%= Rails.application.credentials.dig(:aws, :secret_access_key) %>",
                "<%= ENV.fetch('RESSO_S3_SECRET') %>",
            ]
        )

    def h28_ref_rs(self) -> str:
        return self.pick(
            [
                'std::env::var("TRANSCODER_S3_SECRET")?',
                'env::var("MUX_TOKEN_SECRET").expect("MUX_TOKEN_SECRET unset")',
                "settings.storage.secret_key.clone()",
            ]
        )

    def h28_ref_sh(self) -> str:
        return self.pick(
            [
                '"${ASPERA_SCP_PASS:?set ASPERA_SCP_PASS}"',
                '"$(pass show gmm/aspera/distribucion)"',
                '"$(vault kv get -field=password secret/rights/aspera)"',
                '"$(cat /run/secrets/aspera_pass)"',
                '"$(aws ssm get-parameter --with-decryption --name /rights/aspera --query Parameter.Value --output text)"',
            ]
        )

    def h28_ref_ps(self) -> str:
        return self.pick(
            [
                "$env:ASRUN_SHARE_PASSWORD",
                "(Get-Secret -Name AsRunShare -AsPlainText)",
                "(Get-StoredCredential -Target 'playout-asrun').Password",
                "Read-Host -AsSecureString 'Contrasena del recurso'",
            ]
        )

    def h28_ref_bat(self) -> str:
        return self.pick(["%DEPLOY_PASSWORD%", "%MAREPLAY_REGISTRY_TOKEN%", "!RDS_PASS!"])

    def h28_ref_ci(self) -> str:
        return self.pick(
            [
                "${{ secrets.MAREPLAY_REGISTRY_TOKEN }}",
                "$CI_REGISTRY_PASSWORD",
                "${{ secrets.AWS_SECRET_ACCESS_KEY }}",
                "$(REGISTRY_TOKEN)",
                "${REGISTRY_TOKEN}",
            ]
        )

    def h28_ref_ansible(self) -> str:
        return self.pick(
            [
                '"{{ vault_snmp_rw_community }}"',
                "\"{{ lookup('community.hashi_vault.hashi_vault', 'secret=playout/data/snmp:rw') }}\"",
                "\"{{ lookup('env', 'SNMP_RW') }}\"",
            ]
        )

    def h28_ref_tf(self) -> str:
        return self.pick(
            [
                "var.fastly_api_key",
                "data.aws_secretsmanager_secret_version.fastly.secret_string",
                'data.vault_generic_secret.cdn.data["fastly_api_key"]',
                "sensitive(local.fastly_key)",
            ]
        )

    def h28_ref_store(self) -> str:
        return self.pick(
            [
                "op://Redaccion/ENPS servicio/password",
                "vault:secret/data/newsroom/enps#password",
                "awssm://gmm/newsroom/enps:password",
                "@Microsoft.KeyVault(SecretUri=https://kv-gmm-rights.vault.azure.net/secrets/db-pass/)",
                "bw://Newsroom/ENPS",
            ]
        )

    def h28_ref_liq(self) -> str:
        return self.pick(
            [
                'environment.get("ICECAST_SOURCE_PASSWORD")',
                'string.trim(file.contents("/run/secrets/icecast_source"))',
                "icecast_pass()",
            ]
        )

    def h28_ref_env(self) -> str:
        return self.pick(
            [
                "${SPORTRADAR_API_KEY}",
                "${SPORTRADAR_API_KEY:?missing}",
                "${env:SPORTRADAR_API_KEY}",
                "{{ .Env.SPORTRADAR_API_KEY }}",
                "$(SPORTRADAR_API_KEY)",
            ]
        )

    def h28_secret_path(self) -> str:
        return self.pick(
            [
                "/run/secrets/icecast_admin",
                "/etc/gmm/secrets/slack_webhook",
                "/var/lib/gmm/keys/ticket.key",
                "/etc/samba/credentials/estudio-cdmx",
                "C:\\ProgramData\\Marejada\\secrets\\asrun.cred",
            ]
        )

    def h28_secret_name(self) -> str:
        return self.pick(
            [
                "mareplay-postgresql-auth",
                "mareplay-redis",
                "playback-signing",
                "regcred-ghcr",
                "cdn-fastly-token",
            ]
        )

    def h28_secret_ref_path(self) -> str:
        return self.pick(
            [
                "gmm/prod/mareplay/playback",
                "secret/data/mareplay/playback-signing",
                "projects/gmm-streaming/secrets/playback-hmac",
                "/mareplay/prod/playback/hmac",
            ]
        )

    # ------------------------------------------------------------------ negatives: placeholders
    def h28_placeholder_en(self) -> str:
        return self.pick(
            [
                "<your-api-key>",
                "REPLACE_ME",
                "changeme",
                "xxxxxxxxxxxxxxxxxxxx",
                "********",
                "<stream-key>",
                "YOUR_TOKEN_HERE",
                "TODO",
                "${API_KEY}",
                "xxxx-xxxx-xxxx-xxxx-xxxx",
            ]
        )

    def h28_placeholder_es(self) -> str:
        return self.pick(
            [
                "<tu-contraseña>",
                "CAMBIAR_ESTO",
                "POR_DEFINIR",
                "<clave-api-aqui>",
                "pedir-a-sistemas",
                "contraseña_aqui",
                "XXXXXXXX",
                "<ver-etiqueta-del-equipo>",
            ]
        )

    def h28_placeholder_ca(self) -> str:
        return self.pick(
            [
                "<la-teva-contrasenya>",
                "CANVIA-HO",
                "PENDENT",
                "demana-la-a-sistemes",
                "<clau-aqui>",
                "XXXXXXXX",
            ]
        )

    def h28_redacted(self) -> str:
        return self.pick(
            [
                "[REDACTADO]",
                "[REDACTAT]",
                "[REDACTED]",
                "<oculto>",
                "***eliminado***",
                "(retirada per seguretat)",
                "****",
            ]
        )

    def h28_masked(self) -> str:
        shape = self.rng.randrange(3)
        if shape == 0:
            return "glpat-" + "*" * 16 + self.s(4, URLSAFE)
        if shape == 1:
            return "ghp_" + "•" * 8 + self.s(4, ALNUM)
        return self.s(4, HEX) + "…" + self.s(4, HEX)

    def h28_fake(self) -> str:
        shape = self.rng.randrange(6)
        if shape == 0:
            return "fake-" + self.s(16, LOWNUM)
        if shape == 1:
            return "test_dummy_" + self.s(10, LOWNUM)
        if shape == 2:
            return "not-a-real-key-" + self.s(8, LOWNUM)
        if shape == 3:
            return "ficticio-" + self.s(12, LOWNUM)
        if shape == 4:
            return "prova-no-real-" + self.s(6, LOWNUM)
        return "FAKE" + self.s(12, UPNUM)

    def h28_doc_pw(self) -> str:
        return self.pick(self.words) + self.s(2, DIGITS)

    def h28_doc_example(self) -> str:
        return self.pick(
            [
                "AKIAIOSFODNN7EXAMPLE",
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "sq7HjrUOBfKmC576ILgskD5srU870gJ7",
                "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
                "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
            ]
        )

    def h28_aws_example_pair(self) -> str:
        return (
            "aws_access_key_id = AKIAIOSFODNN7EXAMPLE\n"
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
        )

    def h28_policy_num(self) -> str:
        return self.pick(["8", "10", "12", "14", "16", "90", "5"])

    # ------------------------------------------------------------------ negatives: UI text
    def h28_ui_es(self) -> str:
        return self.pick(
            [
                "La contraseña debe tener al menos 8 caracteres",
                "Contraseña incorrecta. Inténtalo de nuevo.",
                "¿Olvidaste tu contraseña?",
                "Las contraseñas no coinciden",
                "Tu sesión ha caducado, vuelve a iniciar sesión",
                "Introduce el código de tu televisor",
            ]
        )

    def h28_ui_ca(self) -> str:
        return self.pick(
            [
                "La contrasenya ha de tenir almenys 8 caràcters",
                "Contrasenya incorrecta",
                "Has oblidat la contrasenya?",
                "Les contrasenyes no coincideixen",
                "La sessió ha caducat",
                "Introdueix el codi que veus a la tele",
            ]
        )

    def h28_ui_en(self) -> str:
        return self.pick(
            [
                "Password must be at least 8 characters",
                "Incorrect password, please try again",
                "Forgot your password?",
                "Your token has expired. Sign in again.",
                "Enter the code shown on your TV",
                "Passwords do not match",
            ]
        )

    # ------------------------------------------------------------------ negatives: public material
    def h28_cert(self) -> str:
        return self.h28_util_armor("CERTIFICATE", 48 * 18)

    def h28_pubkey(self) -> str:
        return self.h28_util_armor("PUBLIC KEY", 294)

    def h28_ssh_pub(self) -> str:
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
        return (
            f"{kind} {body} {self.pick(self.users)}@{self.pick(['mrj-cdmx', 'mrj-bcn', 'mrj-mad'])}"
        )

    def h28_ssh_hostkey(self) -> str:
        host = self.pick(
            ["sftp.distribuidora.example", "aspera.partner.example", "ingest.filmin.example"]
        )
        body = base64.b64encode(
            b"\x00\x00\x00\x13ecdsa-sha2-nistp256\x00\x00\x00\x08nistp256\x00\x00\x00\x41\x04"
            + self.rng.randbytes(64)
        ).decode()
        return f"{host} ecdsa-sha2-nistp256 {body}"

    def h28_pgp_pub(self) -> str:
        body = base64.b64encode(self.rng.randbytes(48 * 12)).decode()
        rows = [body[i : i + 64] for i in range(0, len(body), 64)]
        check = base64.b64encode(self.rng.randbytes(3)).decode()
        return (
            "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n"
            + "\n".join(rows)
            + f"\n={check}\n-----END PGP PUBLIC KEY BLOCK-----"
        )

    def h28_stripe_pk(self) -> str:
        return "pk_live_51" + self.s(97, ALNUM)

    def h28_google_client_id(self) -> str:
        return f"{self.s(12, DIGITS)}-{self.s(32, LOWNUM)}.apps.googleusercontent.com"

    def h28_algolia_search(self) -> str:
        return self.s(32, HEX)

    def h28_mux_env_key(self) -> str:
        return self.s(26, LOWNUM)

    def h28_nielsen_appid(self) -> str:
        return "P" + self.h28_util_uuid().upper()

    # ------------------------------------------------------------------ negatives: identifiers
    def h28_uuid(self) -> str:
        return self.h28_util_uuid()

    def h28_sha256(self) -> str:
        return hashlib.sha256(self.rng.randbytes(16)).hexdigest()

    def h28_md5(self) -> str:
        return hashlib.md5(self.rng.randbytes(16)).hexdigest()

    def h28_git_sha(self) -> str:
        return self.s(40, HEX)

    def h28_docker_digest(self) -> str:
        return "sha256:" + self.s(64, HEX)

    def h28_sri(self) -> str:
        return "sha512-" + self.h28_util_b64(64)

    def h28_gosum(self) -> str:
        return "h1:" + self.h28_util_b64(32)

    def h28_drm_kid(self) -> str:
        return self.h28_util_uuid()

    def h28_umid(self) -> str:
        return "060A2B340101010501010D4313000000" + self.s(32, HEXU)

    def h28_eidr(self) -> str:
        groups = "-".join(self.s(4, HEXU) for _ in range(5))
        return f"10.5240/{groups}-{self.s(1, UPNUM)}"

    def h28_isrc(self) -> str:
        return (
            self.pick(["ES", "MX", "ES", "ES"])
            + self.s(3, UPNUM)
            + self.pick(["19", "21", "22", "23", "24"])
            + self.s(5, DIGITS)
        )

    def h28_fastly_sid(self) -> str:
        return self.s(22, ALNUM)

    def h28_zone_id(self) -> str:
        return self.s(32, HEX)

    def h28_spotify_client_id(self) -> str:
        return self.s(32, HEX)

    def h28_tag_id(self) -> str:
        return self.s(16, HEX)

    def h28_ga4(self) -> str:
        return "G-" + self.s(10, UPNUM)

    def h28_mux_playback(self) -> str:
        return self.s(36, ALNUM)

    def h28_numeric_id(self) -> str:
        return self.s(self.rng.randrange(6, 11), DIGITS)

    def h28_sr_urn(self) -> str:
        return self.pick(["sr:match:", "sr:sport_event:", "sr:competitor:"]) + self.s(8, DIGITS)


VALUES = Heldout28Values


def _t(path: str, gen: str, positive: bool, text: str) -> evalset.Template:
    # Templates are raw strings; a Python docstring inside one is written as \"\"\".
    body = textwrap.dedent(text).lstrip("\n").replace('\\"\\"\\"', '"""')
    return (path, body, gen, positive)


# ---------------------------------------------------------------------------------------------
# TV playout and broadcast engineering
# ---------------------------------------------------------------------------------------------
TEMPLATES: list[evalset.Template] = [
    _t(
        "playout/automation/config/automation.ini",
        "h28_pw",
        True,
        r"""
        ; Canal Marea - automatización de emisión (sala de control 2, Sant Cugat)
        ; Generado por el instalador del proveedor, revisado por Ingeniería 2024-02
        [General]
        Channel=CANAL_MAREA_HD
        Timezone=Europe/Madrid
        FrameRate=25
        AsRunPath=\\mrj-nas01\asrun\canal_marea

        [Database]
        Provider=SQLOLEDB
        Server=mrj-playout-sql01\AUTOMATION
        Catalog=PlayoutMain
        User=auto_svc
        Password={V}
        ConnectTimeout=15

        [Devices]
        VideoServer1=10.40.2.11:5250
        VideoServer2=10.40.2.12:5250
        Router=10.40.2.30:52116
        """,
    ),
    _t(
        "playout/automation/config/automation.ini",
        "h28_dpapi",
        False,
        r"""
        ; Canal Marea - automatización de emisión (sala de control 2, Sant Cugat)
        ; La contraseña se guarda cifrada con DPAPI (cuenta de máquina). Para cambiarla:
        ;   AutomationConfig.exe /setpassword
        [General]
        Channel=MAREA24H
        Timezone=Europe/Madrid
        FrameRate=25

        [Database]
        Provider=SQLOLEDB
        Server=mrj-playout-sql01\AUTOMATION
        Catalog=PlayoutMain
        User=auto_svc
        PasswordProtected={V}
        ConnectTimeout=15
        """,
    ),
    _t(
        "playout/ansible/group_vars/playout_servers.yml",
        "h28_snmp_community",
        True,
        r"""
        ---
        # Servidores de emisión (CDMX y Sant Cugat). Monitorización por SNMP desde Zabbix.
        ntp_servers:
          - ntp1.mrj.internal
          - ntp2.mrj.internal
        snmp_location: "Sala de control {{ site_code }}"
        snmp_contact: "ingenieria@marejada.media"
        snmp_community_ro: "{V}"
        snmp_community_rw: "{V2}"
        snmp_allowed_sources:
          - 10.40.0.0/16
          - 10.80.0.0/16
        ptp_domain: 127
        """,
    ),
    _t(
        "playout/ansible/group_vars/playout_servers.yml",
        "h28_ref_ansible",
        False,
        r"""
        ---
        # Servidores de emisión (CDMX y Sant Cugat). Monitorización por SNMP desde Zabbix.
        # Las comunidades viven en group_vars/playout_servers/vault.yml (ansible-vault).
        ntp_servers:
          - ntp1.mrj.internal
          - ntp2.mrj.internal
        snmp_location: "Sala de control {{ site_code }}"
        snmp_contact: "ingenieria@marejada.media"
        snmp_community_rw: {V}
        snmp_allowed_sources:
          - 10.40.0.0/16
        """,
    ),
    _t(
        "playout/ansible/group_vars/playout_servers/vault.yml",
        "h28_ansible_vault",
        False,
        r"""
        {V}
        """,
    ),
    _t(
        "playout/scripts/Backup-AsRun.ps1",
        "h28_pw",
        True,
        r"""
        <#
        .SYNOPSIS
            Copia los as-run logs del día al NAS de archivo y los comprime.
        .NOTES
            Programado en el Task Scheduler de MRJ-PLAYOUT-01 a las 04:15.
        #>
        param(
            [string]$Source = 'D:\Automation\AsRun',
            [string]$Target = '\\mrj-nas01\asrun'
        )

        $user = 'MAREJADA\svc_asrun'
        $secure = ConvertTo-SecureString '{V}' -AsPlainText -Force
        $cred = New-Object System.Management.Automation.PSCredential($user, $secure)

        New-PSDrive -Name ASRUN -PSProvider FileSystem -Root $Target -Credential $cred | Out-Null
        Get-ChildItem $Source -Filter '*.log' |
            Where-Object { $_.LastWriteTime -lt (Get-Date).Date } |
            ForEach-Object {
                Compress-Archive -Path $_.FullName -DestinationPath "ASRUN:\$($_.BaseName).zip" -Update
            }
        Remove-PSDrive ASRUN
        """,
    ),
    _t(
        "playout/scripts/Backup-AsRun.ps1",
        "h28_ref_ps",
        False,
        r"""
        <#
        .SYNOPSIS
            Copia los as-run logs del día al NAS de archivo y los comprime.
        #>
        param(
            [string]$Source = 'D:\Automation\AsRun',
            [string]$Target = '\\mrj-nas01\asrun'
        )

        $user = 'MAREJADA\svc_asrun'
        $plain = {V}
        $secure = if ($plain -is [securestring]) { $plain } else { ConvertTo-SecureString $plain -AsPlainText -Force }
        $cred = New-Object System.Management.Automation.PSCredential($user, $secure)
        New-PSDrive -Name ASRUN -PSProvider FileSystem -Root $Target -Credential $cred | Out-Null
        """,
    ),
    _t(
        "playout/asrun/MAREA24H_2024-05-02.log",
        "h28_umid",
        False,
        r"""
        # AS-RUN LOG  channel=MAREA24H  date=2024-05-02  tz=Europe/Madrid
        # time         dur          house_id      title                            umid                                                              status
        06:00:00:00  00:30:00:00  NWS-0502-0600  Marea 24h - Primera hora          {V}  OK
        06:30:00:00  00:00:20:00  PRM-11873      Promo Temporada Directo           {V2}  OK
        06:30:20:00  00:00:30:00  ADV-44120-A    Anuncio                           {V3}  OK
        06:30:50:00  00:29:10:00  NWS-0502-0630  Marea 24h - Primera hora (II)     {V4}  OK
        """,
    ),
    _t(
        "playout/ipmi/inventario_bmc.csv",
        "h28_weak_pw",
        True,
        r"""
        host,site,bmc_ip,bmc_user,bmc_password,modelo,notas
        mrj-playout-01,SCU,10.40.9.11,ADMIN,{V},SYS-1029U,principal canal marea
        mrj-playout-02,SCU,10.40.9.12,ADMIN,{V2},SYS-1029U,backup canal marea
        mrj-playout-11,CDMX,10.80.9.11,ADMIN,{V3},SYS-2029U,principal marea mx
        """,
    ),
]

# ---------------------------------------------------------------------------------------------
# Newsroom: WordPress, agency ingest, transcription, alerts, runbooks, chat
# ---------------------------------------------------------------------------------------------
TEMPLATES += [
    _t(
        "newsroom/web/wp-config.php",
        "h28_pw",
        True,
        r"""
        <?php
        /**
         * Configuración base de WordPress - marea24h.com (redacción digital)
         */

        // ** Ajustes de MySQL ** //
        define( 'DB_NAME', 'marea24h_wp' );
        define( 'DB_USER', 'wp_marea24h' );
        define( 'DB_PASSWORD', '{V}' );
        define( 'DB_HOST', 'mrj-wp-db.cluster-c9x.eu-west-1.rds.amazonaws.com' );
        define( 'DB_CHARSET', 'utf8mb4' );
        define( 'DB_COLLATE', '' );

        $table_prefix = 'm24_';

        define( 'WP_DEBUG', false );
        define( 'DISALLOW_FILE_EDIT', true );

        if ( ! defined( 'ABSPATH' ) ) {
            define( 'ABSPATH', __DIR__ . '/' );
        }
        require_once ABSPATH . 'wp-settings.php';
        """,
    ),
    _t(
        "newsroom/web/wp-config.php",
        "h28_wp_salt",
        True,
        r"""
        <?php
        /**
         * Claves únicas de autenticación - generadas con la API de salts de WordPress.org
         */
        define( 'AUTH_KEY',         '{V}' );
        define( 'SECURE_AUTH_KEY',  '{V2}' );
        define( 'LOGGED_IN_KEY',    '{V3}' );
        define( 'NONCE_KEY',        '{V4}' );
        define( 'AUTH_SALT',        '{V5}' );
        define( 'SECURE_AUTH_SALT', '{V6}' );
        define( 'LOGGED_IN_SALT',   '{V7}' );
        define( 'NONCE_SALT',       '{V8}' );
        """,
    ),
    _t(
        "newsroom/web/wp-config.php",
        "h28_ref_php",
        False,
        r"""
        <?php
        // Producción: las credenciales las inyecta el contenedor (ver k8s/wordpress/secret.yaml)
        define( 'DB_NAME', 'marea24h_wp' );
        define( 'DB_USER', 'wp_marea24h' );
        define( 'DB_PASSWORD', {V} );
        define( 'DB_HOST', getenv('WORDPRESS_DB_HOST') ?: 'localhost' );
        define( 'DB_CHARSET', 'utf8mb4' );

        $table_prefix = 'm24_';
        require_once ABSPATH . 'wp-settings.php';
        """,
    ),
    _t(
        "newsroom/web/sql/usuarios_redaccion.sql",
        "h28_phpass",
        False,
        r"""
        -- Volcado parcial de m24_users (entorno de preproducción) para pruebas de SSO
        INSERT INTO `m24_users` (`ID`, `user_login`, `user_pass`, `user_nicename`, `user_email`, `user_status`) VALUES
        (2, 'mgarcia', '{V}', 'mgarcia', 'mgarcia@marejada.media', 0),
        (3, 'jpuig', '{V2}', 'jpuig', 'jpuig@marejada.media', 0),
        (7, 'editor_deportes', '{V3}', 'editor-deportes', 'deportes@marejada.media', 0);
        """,
    ),
    _t(
        "newsroom/agency_ingest/settings/production.py",
        "h28_agency_key",
        True,
        r"""
        from .base import *  # noqa

        DEBUG = False
        ALLOWED_HOSTS = ["ingest.redaccion.mrj.internal"]

        # Servicios de agencia (teletipos). Polling cada 60 s.
        AGENCY_FEEDS = {
            "wire_es": {
                "base_url": "https://api.wire-provider.net/v3/",
                "client_id": "marejada-redaccion",
                "client_secret": "{V}",
                "products": ["nacional", "internacional", "deportes"],
            },
            "photo_mx": {
                "base_url": "https://feeds.photo-agency.net/mx/",
                "api_key": "{V2}",
            },
        }
        CELERY_BROKER_URL = "redis://redis.redaccion.mrj.internal:6379/3"
        """,
    ),
    _t(
        "newsroom/agency_ingest/settings/production.py",
        "h28_ref_py",
        False,
        r"""
        import os

        from .base import *  # noqa

        DEBUG = False
        ALLOWED_HOSTS = ["ingest.redaccion.mrj.internal"]

        AGENCY_FEEDS = {
            "wire_es": {
                "base_url": "https://api.wire-provider.net/v3/",
                "client_id": "marejada-redaccion",
                "client_secret": {V},
                "products": ["nacional", "internacional", "deportes"],
            },
        }
        CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "redis://localhost:6379/3")
        """,
    ),
    _t(
        "newsroom/frontend/i18n/ca.json",
        "h28_ui_ca",
        False,
        r"""
        {
          "login.title": "Inicia la sessió a Marea 24h",
          "login.user": "Correu electrònic",
          "login.password": "Contrasenya",
          "login.error.password": "{V}",
          "login.forgot": "{V2}",
          "tv.pair.prompt": "{V3}",
          "login.submit": "Entra"
        }
        """,
    ),
    _t(
        "newsroom/frontend/i18n/es-MX.json",
        "h28_ui_es",
        False,
        r"""
        {
          "login.title": "Inicia sesión en Marea 24h",
          "login.user": "Correo electrónico",
          "login.password": "Contraseña",
          "login.error.password": "{V}",
          "login.error.mismatch": "{V2}",
          "session.expired": "{V3}",
          "login.submit": "Entrar"
        }
        """,
    ),
    _t(
        "newsroom/frontend/i18n/messages_en.properties",
        "h28_ui_en",
        False,
        r"""
        # English bundle for the newsroom CMS login and TV pairing screens
        login.title=Sign in to Marea 24h
        login.password.label=Password
        login.password.error={V}
        login.password.forgot={V2}
        tv.pair.prompt={V3}
        """,
    ),
    _t(
        "newsroom/docs/runbooks/enps-ingesta.md",
        "h28_pw",
        True,
        r"""
        # Runbook: ingesta de escaletas del sistema de redacción (ENPS) a emisión

        **Equipo:** Sistemas de Redacción · **Guardia:** #redaccion-guardia

        ## Síntomas
        Las escaletas no aparecen en la automatización y el MOS gateway marca `roReq timeout`.

        ## Pasos
        1. Entra en `mrj-mos01` por RDP.
        2. Reinicia el servicio *MOS Gateway* (`Restart-Service MosGateway`).
        3. Si no conecta, comprueba la cuenta de servicio en el ENPS:
           - usuario: `enps_mos`
           - contraseña: `{V}`
        4. Vuelve a lanzar la sincronización desde el panel de la escaleta.

        > Ojo: la cuenta se bloquea tras 5 intentos fallidos.
        """,
    ),
    _t(
        "newsroom/docs/runbooks/enps-ingesta.md",
        "h28_ref_store",
        False,
        r"""
        # Runbook: ingesta de escaletas del sistema de redacción (ENPS) a emisión

        ## Pasos
        1. Entra en `mrj-mos01` por RDP.
        2. Reinicia el servicio *MOS Gateway* (`Restart-Service MosGateway`).
        3. Si no conecta, comprueba la cuenta de servicio en el ENPS:
           - usuario: `enps_mos`
           - contraseña: en el gestor, referencia `{V}`
        4. Vuelve a lanzar la sincronización desde el panel de la escaleta.
        """,
    ),
    _t(
        "newsroom/transcribe/src/deeplClient.ts",
        "h28_deepl",
        True,
        r"""
        import * as deepl from 'deepl-node';

        // Traducción automática de teletipos (es <-> ca <-> en) para la web
        const authKey = '{V}';
        const translator = new deepl.Translator(authKey, { maxRetries: 3, minTimeout: 5000 });

        export async function translateWire(text: string, target: deepl.TargetLanguageCode) {
          const result = await translator.translateText(text, null, target, {
            formality: 'prefer_less',
            preserveFormatting: true,
          });
          return result.text;
        }
        """,
    ),
    _t(
        "newsroom/transcribe/src/deeplClient.ts",
        "h28_ref_js",
        False,
        r"""
        import * as deepl from 'deepl-node';

        const authKey = {V};
        if (!authKey) {
          throw new Error('DEEPL_AUTH_KEY no está definida');
        }
        const translator = new deepl.Translator(authKey, { maxRetries: 3 });

        export async function translateWire(text: string, target: deepl.TargetLanguageCode) {
          return (await translator.translateText(text, null, target)).text;
        }
        """,
    ),
    _t(
        "newsroom/transcribe/asr_worker.py",
        "h28_hex32",
        True,
        r"""
        \"\"\"Transcripción de totales de vídeo para subtítulos y búsqueda en la redacción.\"\"\"

        import requests

        ASR_URL = "https://api.assemblyai.com/v2/transcript"
        HEADERS = {"authorization": "{V}", "content-type": "application/json"}


        def submit(audio_url: str, language: str = "es") -> str:
            body = {"audio_url": audio_url, "language_code": language, "speaker_labels": True}
            resp = requests.post(ASR_URL, json=body, headers=HEADERS, timeout=30)
            resp.raise_for_status()
            return resp.json()["id"]
        """,
    ),
    _t(
        "newsroom/transcribe/tests/test_asr_worker.py",
        "h28_fake",
        False,
        r"""
        import responses

        import asr_worker

        FAKE_KEY = "{V}"  # clave ficticia: las llamadas se interceptan con responses


        @responses.activate
        def test_submit_returns_id(monkeypatch):
            monkeypatch.setitem(asr_worker.HEADERS, "authorization", FAKE_KEY)
            responses.post(asr_worker.ASR_URL, json={"id": "tr_123"})
            assert asr_worker.submit("https://cdn.example.com/a.mp3") == "tr_123"
        """,
    ),
    _t(
        "newsroom/alerts/cmd/breaking/main.go",
        "h28_telegram",
        True,
        r"""
        package main

        // Envía las alertas de última hora de Marea 24h al canal de Telegram de la redacción.

        import (
            "log"
            "os"

            tgbotapi "github.com/go-telegram-bot-api/telegram-bot-api/v5"
        )

        const botToken = "{V}"
        const channelID int64 = -1001873345120

        func main() {
            bot, err := tgbotapi.NewBotAPI(botToken)
            if err != nil {
                log.Fatalf("telegram: %v", err)
            }
            msg := tgbotapi.NewMessage(channelID, os.Args[1])
            msg.ParseMode = "HTML"
            if _, err := bot.Send(msg); err != nil {
                log.Fatal(err)
            }
        }
        """,
    ),
    _t(
        "newsroom/alerts/cmd/breaking/main.go",
        "h28_ref_go",
        False,
        r"""
        package main

        import (
            "log"
            "os"

            tgbotapi "github.com/go-telegram-bot-api/telegram-bot-api/v5"
        )

        func main() {
            token := {V}
            bot, err := tgbotapi.NewBotAPI(token)
            if err != nil {
                log.Fatalf("telegram: %v", err)
            }
            bot.Send(tgbotapi.NewMessage(-1001873345120, os.Args[1]))
        }
        """,
    ),
    _t(
        "newsroom/bots/escaleta-bot/app.js",
        "h28_slack_bot",
        True,
        r"""
        // Bot de Slack que publica los cambios de escaleta de los informativos en #escaleta
        const { App } = require('@slack/bolt');

        const app = new App({
          token: '{V}',
          signingSecret: process.env.SLACK_SIGNING_SECRET,
          socketMode: false,
        });

        async function publicarCambio(programa, bloque, cambio) {
          await app.client.chat.postMessage({
            channel: '#escaleta',
            text: `*${programa}* · bloque ${bloque}: ${cambio}`,
          });
        }

        module.exports = { app, publicarCambio };
        """,
    ),
    _t(
        "newsroom/chat/export/redaccion-digital/2024-03-14.json",
        "h28_openai",
        True,
        r"""
        [
          {
            "type": "message",
            "user": "U03QF2M1A",
            "text": "¿Alguien tiene la clave para probar los resúmenes automáticos de teletipos?",
            "ts": "1710405113.120349"
          },
          {
            "type": "message",
            "user": "U02K7PLX9",
            "text": "usa esta de momento, luego la cambio: {V}",
            "ts": "1710405190.553019"
          },
          {
            "type": "message",
            "user": "U03QF2M1A",
            "text": "gracias! :raised_hands:",
            "ts": "1710405222.010219"
          }
        ]
        """,
    ),
    _t(
        "newsroom/chat/export/redaccion-digital/2024-04-02.json",
        "h28_redacted",
        False,
        r"""
        [
          {
            "type": "message",
            "user": "U02K7PLX9",
            "text": "He rotado la clave de la API de resúmenes, la vieja era {V}. La nueva está en el cofre.",
            "ts": "1712051320.100200"
          },
          {
            "type": "message",
            "user": "U05B1MM2Z",
            "text": "ok, ¿hay que reiniciar el worker?",
            "ts": "1712051401.220911"
          }
        ]
        """,
    ),
    _t(
        "newsroom/.env",
        "h28_pw",
        True,
        r"""
        # Redacción - servicios auxiliares (MOS gateway, iNEWS FTP, búsqueda)
        APP_ENV=production
        MOS_GATEWAY_HOST=mrj-mos01.mrj.internal
        MOS_GATEWAY_PORT=10540
        ENPS_USER=enps_mos
        ENPS_PASSWORD={V}
        INEWS_FTP_HOST=inews.mrj.internal
        INEWS_FTP_USER=ftp_rundown
        INEWS_FTP_PASSWORD={V2}
        SEARCH_URL=http://opensearch.redaccion.mrj.internal:9200
        """,
    ),
    _t(
        "newsroom/.env.example",
        "h28_placeholder_es",
        False,
        r"""
        # Copia este fichero a .env y rellena los valores (pídelos a Sistemas de Redacción)
        APP_ENV=development
        MOS_GATEWAY_HOST=localhost
        MOS_GATEWAY_PORT=10540
        ENPS_USER=enps_mos
        ENPS_PASSWORD={V}
        INEWS_FTP_HOST=localhost
        INEWS_FTP_USER=ftp_rundown
        INEWS_FTP_PASSWORD={V2}
        """,
    ),
    _t(
        "newsroom/archive-search/CHANGELOG.md",
        "h28_git_sha",
        False,
        r"""
        # Changelog

        ## 3.4.1 - 2024-05-20
        - Fix: el filtro por fecha de emisión ignoraba la zona horaria de CDMX ({V}).
        - Reindexado de piezas de 1998-2003 tras la digitalización ({V2}).

        ## 3.4.0 - 2024-04-30
        - Búsqueda por transcripción automática ({V3}).
        """,
    ),
]

# ---------------------------------------------------------------------------------------------
# MarePlay streaming platform: API, payments, DRM, playback tokens, Kubernetes, Helm, apps
# ---------------------------------------------------------------------------------------------
TEMPLATES += [
    _t(
        "streaming/catalog-api/src/main/resources/application-prod.yml",
        "h28_pw",
        True,
        r"""
        server:
          port: 8080
          shutdown: graceful

        spring:
          application:
            name: mareplay-catalog-api
          datasource:
            url: jdbc:postgresql://mareplay-pg.prod.mrj.internal:5432/catalog?sslmode=require
            username: catalog_app
            password: "{V}"
            hikari:
              maximum-pool-size: 30
          data:
            redis:
              host: mareplay-redis.prod.mrj.internal
              port: 6379
              password: "{V2}"

        management:
          endpoints:
            web:
              exposure:
                include: health,prometheus
        """,
    ),
    _t(
        "streaming/catalog-api/src/main/resources/application-prod.yml",
        "h28_ref_spring",
        False,
        r"""
        spring:
          application:
            name: mareplay-catalog-api
          datasource:
            url: jdbc:postgresql://mareplay-pg.prod.mrj.internal:5432/catalog?sslmode=require
            username: catalog_app
            password: {V}
            hikari:
              maximum-pool-size: 30
          data:
            redis:
              host: mareplay-redis.prod.mrj.internal
              password: {V2}
        """,
    ),
    _t(
        "streaming/catalog-api/src/main/resources/application-prod.properties",
        "h28_jasypt",
        False,
        r"""
        # Valores cifrados con Jasypt; la clave maestra llega por JASYPT_ENCRYPTOR_PASSWORD
        spring.datasource.url=jdbc:postgresql://mareplay-pg.prod.mrj.internal:5432/catalog
        spring.datasource.username=catalog_app
        spring.datasource.password={V}
        spring.data.redis.password={V2}
        jasypt.encryptor.algorithm=PBEWITHHMACSHA512ANDAES_256
        """,
    ),
    _t(
        "streaming/catalog-api/src/main/java/media/marejada/catalog/config/DataSourceConfig.java",
        "h28_ref_java",
        False,
        r"""
        package media.marejada.catalog.config;

        import com.zaxxer.hikari.HikariConfig;
        import com.zaxxer.hikari.HikariDataSource;
        import org.springframework.context.annotation.Bean;
        import org.springframework.context.annotation.Configuration;

        @Configuration
        public class DataSourceConfig {

            @Bean
            public HikariDataSource dataSource(CatalogDbProperties props) {
                HikariConfig cfg = new HikariConfig();
                cfg.setJdbcUrl(props.getUrl());
                cfg.setUsername(props.getUsername());
                cfg.setPassword({V});
                cfg.setMaximumPoolSize(30);
                return new HikariDataSource(cfg);
            }
        }
        """,
    ),
    _t(
        "streaming/catalog-api/src/test/java/media/marejada/catalog/CatalogRepositoryIT.java",
        "h28_fake",
        False,
        r"""
        package media.marejada.catalog;

        import org.testcontainers.containers.PostgreSQLContainer;
        import org.testcontainers.junit.jupiter.Container;
        import org.testcontainers.junit.jupiter.Testcontainers;

        @Testcontainers
        class CatalogRepositoryIT {

            // Contenedor efímero de pruebas: la contraseña es inventada y solo vive en el test
            @Container
            static PostgreSQLContainer<?> pg = new PostgreSQLContainer<>("postgres:16-alpine")
                    .withDatabaseName("catalog")
                    .withUsername("test")
                    .withPassword("{V}");
        }
        """,
    ),
    _t(
        "streaming/billing/.env.production",
        "h28_stripe",
        True,
        r"""
        NODE_ENV=production
        PORT=4010
        BILLING_DB_URL=postgres://billing@mareplay-pg.prod.mrj.internal:5432/billing
        STRIPE_SECRET_KEY={V}
        STRIPE_PRICE_MONTHLY_EUR=price_1OqM2cEuMareplayMensual
        STRIPE_PRICE_YEARLY_EUR=price_1OqM3xEuMareplayAnual
        CHECKOUT_SUCCESS_URL=https://www.mareplay.tv/cuenta/gracias
        """,
    ),
    _t(
        "streaming/billing/.env.example",
        "h28_placeholder_en",
        False,
        r"""
        NODE_ENV=development
        PORT=4010
        BILLING_DB_URL=postgres://billing@localhost:5432/billing
        STRIPE_SECRET_KEY={V}
        STRIPE_WEBHOOK_SECRET={V2}
        CHECKOUT_SUCCESS_URL=http://localhost:3000/cuenta/gracias
        """,
    ),
    _t(
        "streaming/web/src/config/payments.ts",
        "h28_stripe_pk",
        False,
        r"""
        // Claves públicas de pago (se envían al navegador; no son secretas)
        export const payments = {
          stripe: {
            publishableKey: '{V}',
            locale: 'es',
          },
          mercadoPago: {
            publicKey: import.meta.env.VITE_MP_PUBLIC_KEY,
          },
        } as const;
        """,
    ),
    _t(
        "streaming/billing/src/providers/mercadopago.js",
        "h28_mercadopago",
        True,
        r"""
        // Cobros de MarePlay México (OXXO, tarjetas) vía Mercado Pago
        const { MercadoPagoConfig, Preference } = require('mercadopago');

        const client = new MercadoPagoConfig({
          accessToken: '{V}',
          options: { timeout: 5000, idempotencyKey: undefined },
        });

        async function createSubscriptionPreference(userId, plan) {
          const preference = new Preference(client);
          return preference.create({
            body: {
              items: [{ id: plan.sku, title: plan.name, quantity: 1, unit_price: plan.priceMxn, currency_id: 'MXN' }],
              external_reference: userId,
              notification_url: 'https://api.mareplay.tv/billing/webhooks/mercadopago',
            },
          });
        }

        module.exports = { createSubscriptionPreference };
        """,
    ),
    _t(
        "streaming/billing/src/providers/conekta.rb",
        "h28_conekta",
        True,
        r"""
        # frozen_string_literal: true

        require "conekta"

        # Pagos en efectivo (OXXO Pay) para MarePlay México
        module Billing
          module Providers
            class ConektaGateway
              Conekta.api_key = "{V}"
              Conekta.api_version = "2.1.0"
              Conekta.locale = :es

              def create_cash_order(customer, amount_cents)
                Conekta::Order.create(
                  currency: "MXN",
                  customer_info: { customer_id: customer.conekta_id },
                  line_items: [{ name: "MarePlay mensual", unit_price: amount_cents, quantity: 1 }],
                  charges: [{ payment_method: { type: "cash" } }]
                )
              end
            end
          end
        end
        """,
    ),
    _t(
        "streaming/billing/php/redsys/NotificacionRedsys.php",
        "h28_redsys_key",
        True,
        r"""
        <?php
        // Notificación online del TPV virtual (MarePlay España). Comercio 3560XXXXX, terminal 001.
        require_once __DIR__ . '/apiRedsys.php';

        const REDSYS_MERCHANT_CODE = '356012874';
        const REDSYS_TERMINAL = '001';
        const REDSYS_SHA256_KEY = '{V}';

        $redsys = new RedsysAPI();
        $version = $_POST['Ds_SignatureVersion'];
        $params = $_POST['Ds_MerchantParameters'];
        $signatureRecibida = $_POST['Ds_Signature'];

        $decoded = $redsys->decodeMerchantParameters($params);
        $firma = $redsys->createMerchantSignatureNotif(REDSYS_SHA256_KEY, $params);

        if ($firma !== $signatureRecibida) {
            http_response_code(400);
            exit('firma no válida');
        }
        """,
    ),
    _t(
        "streaming/billing/php/redsys/tests/NotificacionTest.php",
        "h28_doc_example",
        False,
        r"""
        <?php
        use PHPUnit\Framework\TestCase;

        final class NotificacionTest extends TestCase
        {
            // Clave de pruebas publicada en la documentación del TPV (entorno sis-t)
            private const CLAVE_DOCUMENTACION = '{V}';

            public function testFirmaDeEjemplo(): void
            {
                $redsys = new RedsysAPI();
                $firma = $redsys->createMerchantSignatureNotif(self::CLAVE_DOCUMENTACION, 'eyJEc19EYXRlIjoiMDEvMDEvMjAyNCJ9');
                $this->assertNotEmpty($firma);
            }
        }
        """,
    ),
    _t(
        "streaming/drm/packager/keys/canal-marea-vod.json",
        "h28_content_key",
        True,
        r"""
        {
          "asset": "serie-la-frontera-t01e03",
          "scheme": "cenc",
          "protection_systems": ["widevine", "playready"],
          "keys": [
            {"label": "SD", "key": "{V}"},
            {"label": "HD", "key": "{V2}"},
            {"label": "AUDIO", "key": "{V3}"}
          ],
          "created_by": "drm-keygen@mrj-pack-02"
        }
        """,
    ),
    _t(
        "streaming/drm/packager/keys/canal-marea-vod.enc.json",
        "h28_sops",
        False,
        r"""
        {
          "asset": "serie-la-frontera-t01e03",
          "scheme": "cenc",
          "keys": [
            {"label": "SD", "key": "{V}"},
            {"label": "HD", "key": "{V2}"}
          ],
          "sops": {
            "kms": [{"arn": "arn:aws:kms:eu-west-1:493027114580:alias/mareplay-drm"}],
            "lastmodified": "2024-05-11T09:12:44Z",
            "version": "3.8.1"
          }
        }
        """,
    ),
    _t(
        "streaming/drm/samples/la-frontera-t01e03/manifest.mpd",
        "h28_drm_kid",
        False,
        r"""
        <?xml version="1.0" encoding="UTF-8"?>
        <MPD xmlns="urn:mpeg:dash:schema:mpd:2011" xmlns:cenc="urn:mpeg:cenc:2013"
             type="static" mediaPresentationDuration="PT48M12S" minBufferTime="PT2S"
             profiles="urn:mpeg:dash:profile:isoff-on-demand:2011">
          <Period id="0">
            <AdaptationSet contentType="video" mimeType="video/mp4" segmentAlignment="true">
              <ContentProtection schemeIdUri="urn:mpeg:dash:mp4protection:2011" value="cenc"
                                 cenc:default_KID="{V}"/>
              <ContentProtection schemeIdUri="urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed"/>
              <Representation id="v1080" bandwidth="6000000" width="1920" height="1080" codecs="avc1.640028"/>
            </AdaptationSet>
            <AdaptationSet contentType="audio" mimeType="audio/mp4" lang="es">
              <ContentProtection schemeIdUri="urn:mpeg:dash:mp4protection:2011" value="cenc"
                                 cenc:default_KID="{V2}"/>
              <Representation id="a-es" bandwidth="128000" codecs="mp4a.40.2"/>
            </AdaptationSet>
          </Period>
        </MPD>
        """,
    ),
    _t(
        "streaming/playback/internal/token/signer.go",
        "h28_jwt_secret",
        True,
        r"""
        package token

        import (
            "time"

            "github.com/golang-jwt/jwt/v5"
        )

        // Firma los tokens de reproducción que valida el CDN antes de servir los segmentos.
        var signingKey = []byte("{V}")

        type PlaybackClaims struct {
            AssetID string `json:"aid"`
            Country string `json:"geo"`
            jwt.RegisteredClaims
        }

        func Sign(assetID, country string, ttl time.Duration) (string, error) {
            claims := PlaybackClaims{
                AssetID: assetID,
                Country: country,
                RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(time.Now().Add(ttl))},
            }
            return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(signingKey)
        }
        """,
    ),
    _t(
        "streaming/playback/internal/token/signer_test.go",
        "h28_fake",
        False,
        r"""
        package token

        import (
            "testing"
            "time"
        )

        func TestSignRoundTrip(t *testing.T) {
            // clave de prueba, no se usa fuera de los tests
            signingKey = []byte("{V}")
            tok, err := Sign("asset-1", "ES", time.Minute)
            if err != nil || tok == "" {
                t.Fatalf("sign: %v", err)
            }
        }
        """,
    ),
    _t(
        "streaming/deploy/k8s/playback/secret.yaml",
        "h28_b64_pw",
        True,
        r"""
        apiVersion: v1
        kind: Secret
        metadata:
          name: playback-signing
          namespace: mareplay
          labels:
            app.kubernetes.io/part-of: mareplay
        type: Opaque
        data:
          PLAYBACK_SIGNING_KEY: {V}
          REDIS_PASSWORD: {V2}
        """,
    ),
    _t(
        "streaming/deploy/k8s/playback/externalsecret.yaml",
        "h28_secret_ref_path",
        False,
        r"""
        apiVersion: external-secrets.io/v1beta1
        kind: ExternalSecret
        metadata:
          name: playback-signing
          namespace: mareplay
        spec:
          refreshInterval: 1h
          secretStoreRef:
            kind: ClusterSecretStore
            name: gmm-secrets
          target:
            name: playback-signing
          data:
            - secretKey: PLAYBACK_SIGNING_KEY
              remoteRef:
                key: {V}
                property: hmac
        """,
    ),
    _t(
        "streaming/deploy/k8s/playback/sealedsecret.yaml",
        "h28_sealed",
        False,
        r"""
        apiVersion: bitnami.com/v1alpha1
        kind: SealedSecret
        metadata:
          name: playback-signing
          namespace: mareplay
        spec:
          encryptedData:
            PLAYBACK_SIGNING_KEY: {V}
            REDIS_PASSWORD: {V2}
          template:
            metadata:
              name: playback-signing
        """,
    ),
    _t(
        "streaming/deploy/helm/mareplay/values-prod.yaml",
        "h28_secret_name",
        False,
        r"""
        global:
          imageRegistry: ghcr.io/marejada
          environment: prod

        postgresql:
          enabled: true
          auth:
            username: catalog_app
            existingSecret: {V}
            secretKeys:
              userPasswordKey: password
        redis:
          auth:
            enabled: true
            existingSecret: {V2}
            existingSecretPasswordKey: redis-password
        """,
    ),
    _t(
        "streaming/notifications/push/fcm_legacy.py",
        "h28_fcm",
        True,
        r"""
        \"\"\"Notificaciones push de MarePlay (nuevos episodios, directos). API legacy, migrar a v1.\"\"\"

        import requests

        FCM_URL = "https://fcm.googleapis.com/fcm/send"
        FCM_SERVER_KEY = "{V}"


        def notify_topic(topic: str, title: str, body: str) -> None:
            payload = {"to": f"/topics/{topic}", "notification": {"title": title, "body": body}}
            headers = {"Authorization": f"key={FCM_SERVER_KEY}", "Content-Type": "application/json"}
            requests.post(FCM_URL, json=payload, headers=headers, timeout=10).raise_for_status()
        """,
    ),
    _t(
        "streaming/web/src/config/google-signin.ts",
        "h28_google_client_id",
        False,
        r"""
        // Inicio de sesión con Google en la web de MarePlay (id de cliente OAuth: es público)
        export const googleSignIn = {
          clientId: '{V}',
          uxMode: 'redirect',
          redirectUri: 'https://www.mareplay.tv/auth/google/callback',
        };
        """,
    ),
    _t(
        "streaming/web/src/config/search.ts",
        "h28_algolia_search",
        False,
        r"""
        import algoliasearch from 'algoliasearch/lite';

        // Clave de solo búsqueda (pensada para el navegador, limitada al índice del catálogo)
        const APP_ID = 'MRJ7Q2LX0P';
        const SEARCH_ONLY_API_KEY = '{V}';

        export const searchClient = algoliasearch(APP_ID, SEARCH_ONLY_API_KEY);
        export const catalogIndex = searchClient.initIndex('mareplay_catalog_es');
        """,
    ),
    _t(
        "streaming/web/src/analytics/index.ts",
        "h28_ga4",
        False,
        r"""
        // Medición de la web de MarePlay (ids públicos de propiedad)
        export const analyticsConfig = {
          ga4MeasurementId: '{V}',
          ga4MeasurementIdMx: '{V2}',
          anonymizeIp: true,
          consentMode: 'basic',
        };
        """,
    ),
    _t(
        "streaming/apps/ios/MarePlay/Resources/Info.plist",
        "h28_mux_env_key",
        False,
        r"""
        <?xml version="1.0" encoding="UTF-8"?>
        <!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
        <plist version="1.0">
        <dict>
            <key>CFBundleDisplayName</key>
            <string>MarePlay</string>
            <key>MuxDataEnvironmentKey</key>
            <string>{V}</string>
            <key>NSAppTransportSecurity</key>
            <dict>
                <key>NSAllowsArbitraryLoads</key>
                <false/>
            </dict>
        </dict>
        </plist>
        """,
    ),
    _t(
        "streaming/live/mux/create_stream.py",
        "h28_mux_secret",
        True,
        r"""
        \"\"\"Crea los live streams de los directos deportivos en Mux (simulcast a redes).\"\"\"

        import os

        import mux_python

        configuration = mux_python.Configuration()
        configuration.username = os.environ["MUX_TOKEN_ID"]
        configuration.password = "{V}"

        live_api = mux_python.LiveStreamsApi(mux_python.ApiClient(configuration))


        def create(event_slug: str):
            req = mux_python.CreateLiveStreamRequest(
                playback_policy=[mux_python.PlaybackPolicy.SIGNED],
                new_asset_settings=mux_python.CreateAssetRequest(playback_policy=["signed"]),
                passthrough=event_slug,
                latency_mode="low",
            )
            return live_api.create_live_stream(req).data
        """,
    ),
    _t(
        "streaming/live/mux/players.json",
        "h28_mux_playback",
        False,
        r"""
        {
          "_comment": "ids de reproducción públicos (se incrustan en la web); la política es 'signed'",
          "players": [
            {"event": "liga-mx-jornada-12", "playback_id": "{V}"},
            {"event": "derbi-barcelona", "playback_id": "{V2}"}
          ]
        }
        """,
    ),
    _t(
        "streaming/transcoder/src/storage.rs",
        "h28_ref_rs",
        False,
        r"""
        use aws_sdk_s3::config::Credentials;

        /// Credenciales del bucket de mezzanine (CDMX). Nunca en el binario: vienen del entorno.
        pub fn credentials() -> anyhow::Result<Credentials> {
            let key_id = std::env::var("TRANSCODER_S3_KEY_ID")?;
            let secret = {V};
            Ok(Credentials::new(key_id, secret, None, None, "env"))
        }
        """,
    ),
    _t(
        "streaming/live/youtube/sync_broadcasts.py",
        "h28_google_api",
        True,
        r"""
        \"\"\"Lee los directos programados en los canales de YouTube del grupo para la parrilla web.\"\"\"

        from googleapiclient.discovery import build

        YOUTUBE_API_KEY = "{V}"
        CHANNELS = {"canal_marea": "Canal Marea", "marea_24h": "Marea 24h"}

        youtube = build("youtube", "v3", developerKey=YOUTUBE_API_KEY, cache_discovery=False)


        def upcoming(channel_id: str) -> list[dict]:
            req = youtube.search().list(
                part="snippet", channelId=channel_id, eventType="upcoming", type="video", maxResults=25
            )
            return req.execute().get("items", [])
        """,
    ),
    _t(
        "streaming/live/encoders/srt-gateway/gateway.conf",
        "h28_srt_pass",
        True,
        r"""
        # Pasarela SRT: contribución desde las unidades móviles al centro de emisión
        [input.um1]
        mode = listener
        port = 9001
        latency = 800
        passphrase = {V}
        pbkeylen = 32

        [input.um2]
        mode = listener
        port = 9002
        latency = 800
        passphrase = {V2}
        pbkeylen = 32

        [output.playout]
        url = udp://239.10.40.21:5000?pkt_size=1316
        """,
    ),
    _t(
        "streaming/live/encoders/srt-gateway/gateway.conf.example",
        "h28_placeholder_es",
        False,
        r"""
        # Pasarela SRT: plantilla. La frase de paso se genera por evento y la entrega Continuidad.
        [input.um1]
        mode = listener
        port = 9001
        latency = 800
        passphrase = {V}
        pbkeylen = 32
        """,
    ),
    _t(
        "streaming/live/obs/profiles/DirectoRedes/service.json",
        "h28_stream_key",
        True,
        r"""
        {
            "settings": {
                "bwtest": false,
                "key": "{V}",
                "server": "rtmp://a.rtmp.youtube.com/live2",
                "service": "YouTube - RTMPS"
            },
            "type": "rtmp_common"
        }
        """,
    ),
    _t(
        "streaming/live/obs/README.md",
        "h28_placeholder_en",
        False,
        r"""
        # OBS profiles for social simulcasts

        Import `profiles/DirectoRedes` and set the stream key from the platform dashboard:

        ```json
        "settings": {
            "key": "{V}",
            "server": "rtmp://a.rtmp.youtube.com/live2"
        }
        ```

        Never commit the real key; it is per-event and is revoked after the broadcast.
        """,
    ),
    _t(
        "streaming/web/package-lock.json",
        "h28_sri",
        False,
        r"""
        {
          "name": "mareplay-web",
          "version": "5.12.0",
          "lockfileVersion": 3,
          "packages": {
            "node_modules/hls.js": {
              "version": "1.5.8",
              "resolved": "https://registry.npmjs.org/hls.js/-/hls.js-1.5.8.tgz",
              "integrity": "{V}"
            },
            "node_modules/shaka-player": {
              "version": "4.8.3",
              "resolved": "https://registry.npmjs.org/shaka-player/-/shaka-player-4.8.3.tgz",
              "integrity": "{V2}"
            }
          }
        }
        """,
    ),
    _t(
        "streaming/deploy/.github/workflows/deploy-catalog.yml",
        "h28_ref_ci",
        False,
        r"""
        name: deploy-catalog
        on:
          push:
            branches: [main]
            paths: ["streaming/catalog-api/**"]

        jobs:
          build:
            runs-on: ubuntu-latest
            steps:
              - uses: actions/checkout@v4
              - uses: docker/login-action@v3
                with:
                  registry: ghcr.io
                  username: mareplay-ci
                  password: {V}
              - run: docker build -t ghcr.io/marejada/catalog-api:${{ github.sha }} streaming/catalog-api
              - run: docker push ghcr.io/marejada/catalog-api:${{ github.sha }}
        """,
    ),
    _t(
        "streaming/deploy/.npmrc",
        "h28_github",
        True,
        r"""
        @marejada:registry=https://npm.pkg.github.com
        //npm.pkg.github.com/:_authToken={V}
        always-auth=true
        engine-strict=true
        """,
    ),
]

# ---------------------------------------------------------------------------------------------
# CDN: Akamai, Fastly, Cloudflare, CloudFront, origin nginx
# ---------------------------------------------------------------------------------------------
TEMPLATES += [
    _t(
        "cdn/akamai/.edgerc",
        "h28_edgerc",
        True,
        r"""
        [default]
        {V}
        max-body = 131072

        [ccu]
        {V2}
        """,
    ),
    _t(
        "cdn/akamai/.edgerc.example",
        "h28_placeholder_en",
        False,
        r"""
        ; Copy to ~/.edgerc. Credentials come from Control Center > Identity & Access > API clients.
        [default]
        client_secret = {V}
        host = akab-xxxxxxxxxxxxxxxx-xxxxxxxxxxxxxxxx.luna.akamaiapis.net
        access_token = {V2}
        client_token = {V3}
        max-body = 131072
        """,
    ),
    _t(
        "cdn/akamai/token_auth/generate_token.py",
        "h28_hex64",
        True,
        r"""
        \"\"\"Tokens de autorización en el edge (EdgeAuth) para los HLS de MarePlay.\"\"\"

        from akamai.edgeauth import EdgeAuth

        EDGE_KEY = "{V}"

        _auth = EdgeAuth(key=EDGE_KEY, window_seconds=6 * 3600, escape_early=False, token_name="hdnts")


        def hls_token(acl: str = "/hls/*") -> str:
            return _auth.generate_acl_token(acl)
        """,
    ),
    _t(
        "cdn/akamai/property/mareplay-hls.json",
        "h28_numeric_id",
        False,
        r"""
        {
          "propertyName": "mareplay-hls-prod",
          "contractId": "ctr_3-1ABCD9",
          "groupId": "grp_218441",
          "rules": {
            "name": "default",
            "behaviors": [
              {"name": "origin", "options": {"hostname": "origin-hls.mareplay.tv", "httpPort": 80}},
              {"name": "cpCode", "options": {"value": {"id": {V}, "name": "mareplay-hls"}}},
              {"name": "caching", "options": {"behavior": "MAX_AGE", "ttl": "6s"}}
            ]
          }
        }
        """,
    ),
    _t(
        "cdn/fastly/terraform/prod.tfvars",
        "h28_fastly",
        True,
        r"""
        # Variables de producción del servicio de imágenes (thumbnails y pósters)
        environment     = "prod"
        domain          = "img.mareplay.tv"
        backend_address = "mareplay-img-origin.s3.eu-west-1.amazonaws.com"
        fastly_api_key  = "{V}"
        default_ttl     = 86400
        """,
    ),
    _t(
        "cdn/fastly/terraform/main.tf",
        "h28_ref_tf",
        False,
        r"""
        terraform {
          required_providers {
            fastly = {
              source  = "fastly/fastly"
              version = "~> 5.7"
            }
          }
        }

        provider "fastly" {
          api_key = {V}
        }

        resource "fastly_service_vcl" "images" {
          name = "mareplay-images-${var.environment}"
          domain {
            name = var.domain
          }
          backend {
            address = var.backend_address
            name    = "s3-origin"
            port    = 443
          }
          force_destroy = false
        }
        """,
    ),
    _t(
        "cdn/fastly/services.yaml",
        "h28_fastly_sid",
        False,
        r"""
        # Inventario de servicios de Fastly (ids de servicio; no dan acceso por sí solos)
        services:
          - name: mareplay-images-prod
            service_id: {V}
            domains: [img.mareplay.tv]
          - name: marea24h-web-prod
            service_id: {V2}
            domains: [www.marea24h.com, marea24h.com]
        """,
    ),
    _t(
        "cdn/cloudflare/purge_podcasts.sh",
        "h28_cloudflare",
        True,
        r"""
        #!/usr/bin/env bash
        # Purga la caché de los feeds RSS de Ressò tras publicar un episodio.
        set -euo pipefail

        ZONE_ID="${CF_ZONE_ID:-}"
        CF_API_TOKEN="{V}"

        curl -fsS -X POST "https://api.cloudflare.com/client/v4/zones/${ZONE_ID}/purge_cache" \
          -H "Authorization: Bearer ${CF_API_TOKEN}" \
          -H "Content-Type: application/json" \
          --data "{\"files\":[\"https://feeds.resso.fm/${1}/rss\"]}"
        """,
    ),
    _t(
        "cdn/cloudflare/zones.yaml",
        "h28_zone_id",
        False,
        r"""
        # Zonas de Cloudflare del grupo (ids de zona y de cuenta, visibles en el panel)
        account_id: {V}
        zones:
          resso.fm:
            zone_id: {V2}
            plan: pro
          radiomarea.cat:
            zone_id: {V3}
            plan: business
        """,
    ),
    _t(
        "cdn/cloudfront/keys/mareplay-signer-2024.pem",
        "h28_rsa_key",
        True,
        r"""
        {V}
        """,
    ),
    _t(
        "cdn/cloudfront/terraform/signed_urls.tf",
        "h28_pubkey",
        False,
        r"""
        resource "aws_cloudfront_public_key" "signer_2024" {
          name        = "mareplay-signer-2024"
          comment     = "Firma de URLs de descarga offline"
          encoded_key = <<-EOT
        {V}
        EOT
        }

        resource "aws_cloudfront_key_group" "downloads" {
          name  = "mareplay-downloads"
          items = [aws_cloudfront_public_key.signer_2024.id]
        }
        """,
    ),
    _t(
        "cdn/origin/nginx/conf.d/secure-downloads.conf",
        "h28_pw",
        True,
        r"""
        # Descargas de másters para distribuidores: enlaces con caducidad (secure_link)
        server {
            listen 443 ssl http2;
            server_name descargas.marejada.media;

            ssl_certificate     /etc/nginx/tls/descargas.crt;
            ssl_certificate_key /etc/nginx/tls/descargas.key;

            location /masters/ {
                secure_link $arg_md5,$arg_expires;
                secure_link_md5 "$secure_link_expires$uri {V}";
                if ($secure_link = "") { return 403; }
                if ($secure_link = "0") { return 410; }
                alias /srv/masters/;
            }
        }
        """,
    ),
    _t(
        "cdn/origin/nginx/conf.d/tls-tickets.conf",
        "h28_secret_path",
        False,
        r"""
        # Claves de ticket TLS compartidas entre los orígenes (rotadas por cron cada 12 h)
        ssl_session_cache   shared:SSL:50m;
        ssl_session_timeout 1d;
        ssl_session_tickets on;
        ssl_session_ticket_key {V};
        """,
    ),
    _t(
        "cdn/logs/samples/edge-2024-05-12.log",
        "h28_uuid",
        False,
        r"""
        2024-05-12T20:45:01Z 200 GET /hls/liga-mx/j12/1080p/seg_000481.ts 1.84MB HIT req_id={V} pop=MEX
        2024-05-12T20:45:01Z 200 GET /hls/liga-mx/j12/720p/seg_000481.ts 1.02MB HIT req_id={V2} pop=QRO
        2024-05-12T20:45:02Z 403 GET /hls/liga-mx/j12/master.m3u8 0B MISS req_id={V3} pop=MAD
        """,
    ),
]

# ---------------------------------------------------------------------------------------------
# Ad tech and audience measurement
# ---------------------------------------------------------------------------------------------
TEMPLATES += [
    _t(
        "adtech/gam-reporting/credentials/gmm-adops-reporting.json",
        "h28_gcp_pem",
        True,
        r"""
        {
          "type": "service_account",
          "project_id": "gmm-adops-reporting",
          "private_key": "{V}",
          "client_email": "gam-reports@gmm-adops-reporting.iam.gserviceaccount.com",
          "client_id": "104729384756102938475",
          "auth_uri": "https://accounts.google.com/o/oauth2/auth",
          "token_uri": "https://oauth2.googleapis.com/token"
        }
        """,
    ),
    _t(
        "adtech/gam-reporting/credentials/service-account.example.json",
        "h28_placeholder_en",
        False,
        r"""
        {
          "type": "service_account",
          "project_id": "gmm-adops-reporting",
          "private_key_id": "{V}",
          "private_key": "-----BEGIN PRIVATE KEY-----\n{V2}\n-----END PRIVATE KEY-----\n",
          "client_email": "gam-reports@gmm-adops-reporting.iam.gserviceaccount.com"
        }
        """,
    ),
    _t(
        "adtech/gam-reporting/googleads.yaml",
        "h28_ref_env",
        False,
        r"""
        ad_manager:
          application_name: gmm-adops-reporting
          network_code: 21839475
          path_to_private_key_file: {V}
        """,
    ),
    _t(
        "adtech/measurement/ios/MeasurementSetup.swift",
        "h28_nielsen_appid",
        False,
        r"""
        import Foundation

        // Medición de audiencias en la app de MarePlay (identificadores públicos del SDK)
        enum MeasurementSetup {
            static let appInfo: [String: String] = [
                "appid": "{V}",
                "appname": "MarePlay iOS",
                "sfcode": "dcr",
                "nol_devDebug": "ERROR",
            ]
        }
        """,
    ),
    _t(
        "adtech/web/public/ads.txt",
        "h28_tag_id",
        False,
        r"""
        # ads.txt - marea24h.com / mareplay.tv
        contact=adops@marejada.media
        google.com, pub-4829103746518290, DIRECT, {V}
        appnexus.com, 11482, DIRECT, {V2}
        rubiconproject.com, 20714, RESELLER, {V3}
        """,
    ),
    _t(
        "adtech/audience/hashed_segments.csv",
        "h28_sha256",
        False,
        r"""
        hashed_email_sha256,segment,updated_at
        {V},deportes_futbol,2024-05-10
        {V2},series_drama,2024-05-10
        {V3},noticias_cdmx,2024-05-11
        """,
    ),
    _t(
        "adtech/audience/stream-processor/src/main/resources/application.conf",
        "h28_pw",
        True,
        r"""
        # Procesador de eventos de audiencia (Kafka -> ClickHouse)
        kafka {
          bootstrap-servers = "kafka-audiencia-1.mrj.internal:9094,kafka-audiencia-2.mrj.internal:9094"
          security.protocol = "SASL_SSL"
          sasl.mechanism = "SCRAM-SHA-512"
          sasl.jaas.config = "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"audiencia-stream\" password=\"{V}\";"
          group.id = "audiencia-clickhouse-sink"
        }
        clickhouse.url = "jdbc:clickhouse://clickhouse.mrj.internal:8123/audiencia"
        """,
    ),
    _t(
        "adtech/audience/stream-processor/src/main/resources/application.conf",
        "h28_ref_env",
        False,
        r"""
        kafka {
          bootstrap-servers = "kafka-audiencia-1.mrj.internal:9094"
          security.protocol = "SASL_SSL"
          sasl.mechanism = "SCRAM-SHA-512"
          sasl.username = "audiencia-stream"
          sasl.password = "{V}"
          group.id = "audiencia-clickhouse-sink"
        }
        """,
    ),
]

# ---------------------------------------------------------------------------------------------
# Ressò podcast hosting (Rails), Apple and Spotify delivery, private feeds
# ---------------------------------------------------------------------------------------------
TEMPLATES += [
    _t(
        "podcast/resso/config/storage.yml",
        "h28_aws_pair_yaml",
        True,
        r"""
        local:
          service: Disk
          root: <%= Rails.root.join("storage") %>

        amazon:
          service: S3
          {IV}
          region: eu-west-1
          bucket: resso-audio-prod
        """,
    ),
    _t(
        "podcast/resso/config/storage.yml",
        "h28_ref_rb",
        False,
        r"""
        amazon:
          service: S3
          access_key_id: <%= ENV["RESSO_S3_KEY_ID"] %>
          secret_access_key: {V}
          region: eu-west-1
          bucket: resso-audio-prod
        """,
    ),
    _t(
        "podcast/resso/config/credentials/production.yml.enc",
        "h28_rails_enc",
        False,
        r"""
        {V}
        """,
    ),
    _t(
        "podcast/resso/db/seeds.rb",
        "h28_bcrypt",
        False,
        r"""
        # Usuarios de demostración para el panel de creadores (staging)
        User.find_or_create_by!(email: "demo.creadora@resso.fm") do |u|
          u.name = "Creadora Demo"
          u.encrypted_password = "{V}"
          u.role = :creator
        end

        User.find_or_create_by!(email: "soporte@resso.fm") do |u|
          u.name = "Soporte Ressò"
          u.encrypted_password = "{V2}"
          u.role = :admin
        end
        """,
    ),
    _t(
        "podcast/delivery/apple/AuthKey_7QK2M9XW3B.p8",
        "h28_ec_p8",
        True,
        r"""
        {V}
        """,
    ),
    _t(
        "podcast/delivery/spotify/sync_shows.py",
        "h28_hex32",
        True,
        r"""
        \"\"\"Sincroniza las estadísticas de los shows de Ressò publicados en Spotify.\"\"\"

        import os

        import requests

        CLIENT_ID = os.environ["SPOTIFY_CLIENT_ID"]
        CLIENT_SECRET = "{V}"


        def token() -> str:
            resp = requests.post(
                "https://accounts.spotify.com/api/token",
                data={"grant_type": "client_credentials"},
                auth=(CLIENT_ID, CLIENT_SECRET),
                timeout=15,
            )
            resp.raise_for_status()
            return resp.json()["access_token"]
        """,
    ),
    _t(
        "podcast/delivery/spotify/sync_shows.py",
        "h28_spotify_client_id",
        False,
        r"""
        \"\"\"Sincroniza las estadísticas de los shows de Ressò publicados en Spotify.\"\"\"

        import os

        import requests

        CLIENT_ID = "{V}"
        CLIENT_SECRET = os.environ["SPOTIFY_CLIENT_SECRET"]


        def token() -> str:
            resp = requests.post(
                "https://accounts.spotify.com/api/token",
                data={"grant_type": "client_credentials"},
                auth=(CLIENT_ID, CLIENT_SECRET),
                timeout=15,
            )
            return resp.json()["access_token"]
        """,
    ),
    _t(
        "podcast/resso/db/private_feeds.sql",
        "h28_feed_token",
        True,
        r"""
        -- Feeds privados de suscriptores (migración desde la plataforma anterior, 2024-01)
        INSERT INTO private_feeds (show_slug, subscriber_email, feed_token, created_at) VALUES
          ('la-tertulia-plus', 'suscriptor1@correo.example', '{V}', '2024-01-09'),
          ('crims-extra', 'subscriptora2@correu.example', '{V2}', '2024-01-09');
        -- URL resultante: https://feeds.resso.fm/private/<feed_token>/rss
        """,
    ),
    _t(
        "podcast/feeds/la-tertulia/rss.xml",
        "h28_uuid",
        False,
        r"""
        <?xml version="1.0" encoding="UTF-8"?>
        <rss version="2.0" xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd"
             xmlns:podcast="https://podcastindex.org/namespace/1.0">
          <channel>
            <title>La Tertulia</title>
            <language>es</language>
            <podcast:guid>{V}</podcast:guid>
            <itunes:author>Ràdio Marea</itunes:author>
            <item>
              <title>Episodio 212: el mercado de fichajes</title>
              <guid isPermaLink="false">{V2}</guid>
              <enclosure url="https://cdn.resso.fm/la-tertulia/212.mp3" length="48211022" type="audio/mpeg"/>
            </item>
          </channel>
        </rss>
        """,
    ),
    _t(
        "podcast/resso/spec/fixtures/files/private_feeds.yml",
        "h28_fake",
        False,
        r"""
        # Fixtures de pruebas: tokens inventados, no corresponden a ningún suscriptor
        tertulia_plus:
          show_slug: la-tertulia-plus
          feed_token: {V}
        crims_extra:
          show_slug: crims-extra
          feed_token: {V2}
        """,
    ),
    _t(
        "podcast/resso/docs/api.md",
        "h28_doc_pw",
        False,
        r"""
        # API de Ressò para creadores

        Todas las llamadas usan autenticación básica con tu usuario y la contraseña de la API.

        ```bash
        curl -u demo:{V} https://api.example.com/v1/shows
        ```

        O, en la URL (solo para pruebas locales):

        ```
        https://demo:{V}@api.example.com/v1/shows/la-tertulia/episodes
        ```
        """,
    ),
    _t(
        "podcast/resso/.npmrc",
        "h28_npm",
        True,
        r"""
        registry=https://registry.npmjs.org/
        //registry.npmjs.org/:_authToken={V}
        save-exact=true
        """,
    ),
    _t(
        "podcast/resso/config/initializers/sendgrid.rb",
        "h28_sendgrid",
        True,
        r"""
        # Correo transaccional de Ressò (altas, restablecimiento de contraseña, facturas)
        ActionMailer::Base.smtp_settings = {
          user_name: "apikey",
          password: "{V}",
          domain: "resso.fm",
          address: "smtp.sendgrid.net",
          port: 587,
          authentication: :plain,
          enable_starttls_auto: true
        }
        """,
    ),
]

# ---------------------------------------------------------------------------------------------
# MareaSports live data feeds
# ---------------------------------------------------------------------------------------------
TEMPLATES += [
    _t(
        "sports/feeds/config/providers.yaml",
        "h28_sportradar",
        True,
        r"""
        # Proveedores de datos en directo para marcadores, grafismo y la app
        sportradar:
          base_url: https://api.sportradar.com/soccer/production/v4/es
          api_key: {V}
          poll_interval_s: 5
          competitions:
            - sr:competition:27466  # Liga MX
            - sr:competition:8      # LaLiga
        push:
          enabled: true
          url: wss://api.sportradar.com/soccer/production/stream/events/subscribe
        """,
    ),
    _t(
        "sports/feeds/config/providers.yaml",
        "h28_ref_env",
        False,
        r"""
        # Proveedores de datos en directo para marcadores, grafismo y la app
        sportradar:
          base_url: https://api.sportradar.com/soccer/production/v4/es
          api_key: {V}
          poll_interval_s: 5
        """,
    ),
    _t(
        "sports/feeds/fixtures/match_timeline_sample.json",
        "h28_sr_urn",
        False,
        r"""
        {
          "sport_event": {"id": "{V}", "start_time": "2024-05-12T02:05:00+00:00"},
          "competitors": [
            {"id": "{V2}", "name": "Club A", "qualifier": "home"},
            {"id": "{V3}", "name": "Club B", "qualifier": "away"}
          ],
          "timeline": [
            {"type": "score_change", "match_clock": "23:41", "home_score": 1, "away_score": 0}
          ]
        }
        """,
    ),
    _t(
        "sports/feeds/docs/ws-feed.md",
        "h28_doc_pw",
        False,
        r"""
        # Feed de cuotas (websocket)

        Ejemplo de conexión contra el entorno de documentación del proveedor:

        ```js
        const ws = new WebSocket('wss://demo:{V}@feed.example.com/v2/stream?sports=soccer');
        ```

        En producción el usuario y la contraseña se leen de `SPORTS_FEED_USER` y
        `SPORTS_FEED_PASSWORD`.
        """,
    ),
    _t(
        "sports/feeds/Dockerfile",
        "h28_agency_key",
        True,
        r"""
        FROM golang:1.22-alpine AS build
        WORKDIR /src
        COPY . .
        RUN go build -o /out/feedrelay ./cmd/feedrelay

        FROM gcr.io/distroless/static-debian12
        COPY --from=build /out/feedrelay /feedrelay
        ENV FEED_PROVIDER=genius \
            FEED_REGION=eu \
            FEED_API_KEY={V}
        EXPOSE 8088
        ENTRYPOINT ["/feedrelay"]
        """,
    ),
    _t(
        "sports/feeds/Dockerfile.pinned",
        "h28_docker_digest",
        False,
        r"""
        FROM golang:1.22-alpine@{V} AS build
        WORKDIR /src
        COPY . .
        RUN go build -o /out/feedrelay ./cmd/feedrelay

        FROM gcr.io/distroless/static-debian12@{V2}
        COPY --from=build /out/feedrelay /feedrelay
        ENTRYPOINT ["/feedrelay"]
        """,
    ),
    _t(
        "sports/feeds/go.sum",
        "h28_gosum",
        False,
        r"""
        github.com/gorilla/websocket v1.5.1 {V}
        github.com/gorilla/websocket v1.5.1/go.mod {V2}
        github.com/spf13/viper v1.18.2 {V3}
        """,
    ),
]

# ---------------------------------------------------------------------------------------------
# Rights management and distribution
# ---------------------------------------------------------------------------------------------
TEMPLATES += [
    _t(
        "rights/delivery/scripts/aspera_push.sh",
        "h28_pw",
        True,
        r"""
        #!/usr/bin/env bash
        # Entrega de másters y paquetes IMF a distribuidores (ventana semanal, jueves 02:00)
        set -euo pipefail

        PARTNER="${1:?uso: aspera_push.sh <partner> <paquete>}"
        PACKAGE="${2:?falta paquete}"

        export ASPERA_SCP_PASS='{V}'
        ascp -P 33001 -l 800M -k 2 --mode=send --overwrite=diff \
          --user=gmm_distribucion --host="aspera.${PARTNER}.example" \
          "/srv/entregas/${PACKAGE}" "/inbox/gmm/"
        """,
    ),
    _t(
        "rights/delivery/scripts/aspera_push.sh",
        "h28_ref_sh",
        False,
        r"""
        #!/usr/bin/env bash
        set -euo pipefail

        PARTNER="${1:?uso: aspera_push.sh <partner> <paquete>}"
        PACKAGE="${2:?falta paquete}"

        ASPERA_SCP_PASS={V}
        export ASPERA_SCP_PASS
        ascp -P 33001 -l 800M -k 2 --user=gmm_distribucion --host="aspera.${PARTNER}.example" \
          "/srv/entregas/${PACKAGE}" "/inbox/gmm/"
        """,
    ),
    _t(
        "rights/delivery/filezilla/sitemanager.xml",
        "h28_b64_pw",
        True,
        r"""
        <?xml version="1.0" encoding="UTF-8"?>
        <FileZilla3 version="3.66.5" platform="windows">
            <Servers>
                <Server>
                    <Host>sftp.distribuidora-latam.example</Host>
                    <Port>22</Port>
                    <Protocol>1</Protocol>
                    <Type>0</Type>
                    <User>marejada_entregas</User>
                    <Pass encoding="base64">{V}</Pass>
                    <Logontype>1</Logontype>
                    <Name>Distribuidora LATAM</Name>
                    <RemoteDir>1 0 6 inbox</RemoteDir>
                </Server>
            </Servers>
        </FileZilla3>
        """,
    ),
    _t(
        "rights/delivery/known_hosts",
        "h28_ssh_hostkey",
        False,
        r"""
        {V}
        {V2}
        """,
    ),
    _t(
        "rights/contracts/Rights.Api/appsettings.Production.json",
        "h28_pw",
        True,
        r"""
        {
          "Logging": {
            "LogLevel": { "Default": "Information", "Microsoft.AspNetCore": "Warning" }
          },
          "ConnectionStrings": {
            "Contracts": "Server=tcp:gmm-rights-sql.database.windows.net,1433;Initial Catalog=Contratos;User ID=rights_api;Password={V};Encrypt=True;TrustServerCertificate=False;"
          },
          "Windows": {
            "DefaultTerritories": [ "ES", "AD", "MX" ]
          }
        }
        """,
    ),
    _t(
        "rights/contracts/Rights.Api/appsettings.Production.json",
        "h28_ref_store",
        False,
        r"""
        {
          "ConnectionStrings": {
            "Contracts": "Server=tcp:gmm-rights-sql.database.windows.net,1433;Initial Catalog=Contratos;User ID=rights_api;Encrypt=True;"
          },
          "ContractsDbPassword": "{V}",
          "Windows": {
            "DefaultTerritories": [ "ES", "AD", "MX" ]
          }
        }
        """,
    ),
    _t(
        "rights/contracts/Rights.Api/Program.cs",
        "h28_ref_cs",
        False,
        r"""
        using Microsoft.Data.SqlClient;

        var builder = WebApplication.CreateBuilder(args);

        var csb = new SqlConnectionStringBuilder(builder.Configuration.GetConnectionString("Contracts"))
        {
            Password = {V}
        };
        builder.Services.AddDbContext<ContractsContext>(o => o.UseSqlServer(csb.ConnectionString));

        var app = builder.Build();
        app.MapControllers();
        app.Run();
        """,
    ),
    _t(
        "rights/keys/gmm-distribucion-2024.sec.asc",
        "h28_pgp_private",
        True,
        r"""
        {V}
        """,
    ),
    _t(
        "rights/keys/partners/distribuidora-latam.pub.asc",
        "h28_pgp_pub",
        False,
        r"""
        {V}
        """,
    ),
    _t(
        "rights/catalogue/exports/titulos_2024Q2.csv",
        "h28_eidr",
        False,
        r"""
        titulo,tipo,eidr,temporada,episodio,territorios,ventana_inicio,ventana_fin
        "La Frontera",episodio,{V},1,3,"ES;AD",2024-04-01,2026-03-31
        "La Frontera",episodio,{V2},1,4,"ES;AD",2024-04-01,2026-03-31
        "Crónicas del Puerto",película,{V3},,,"MX;US-HISP",2024-06-15,2025-06-14
        """,
    ),
    _t(
        "rights/catalogue/exports/fonoteca_isrc.csv",
        "h28_isrc",
        False,
        r"""
        isrc,titulo,interprete,sello,uso_autorizado
        {V},Sintonía Marea 24h,Banda Marea,Marejada Música,emision+streaming
        {V2},Cortinilla Deportes,Estudio Sant Cugat,Marejada Música,emision
        {V3},Tema central La Frontera,Orquesta CDMX,Marejada Música,emision+streaming+podcast
        """,
    ),
    _t(
        "rights/delivery/checksums/LA_FRONTERA_S01.md5",
        "h28_md5",
        False,
        r"""
        {V}  LA_FRONTERA_S01E01_IMF/VIDEO_d3f1.mxf
        {V2}  LA_FRONTERA_S01E01_IMF/AUDIO_ES_51.mxf
        {V3}  LA_FRONTERA_S01E01_IMF/CPL_es.xml
        """,
    ),
]

# ---------------------------------------------------------------------------------------------
# Ràdio Marea network: Icecast, Liquidsoap, RDS encoders, studio guides (Catalan)
# ---------------------------------------------------------------------------------------------
TEMPLATES += [
    _t(
        "radio/icecast/icecast.xml",
        "h28_icecast_pw",
        True,
        r"""
        <icecast>
            <location>Sant Cugat del Vallès</location>
            <admin>tecnica@radiomarea.cat</admin>
            <limits>
                <clients>4000</clients>
                <sources>12</sources>
            </limits>
            <authentication>
                <source-password>{V}</source-password>
                <relay-password>{V2}</relay-password>
                <admin-user>admin</admin-user>
                <admin-password>{V3}</admin-password>
            </authentication>
            <hostname>stream.radiomarea.cat</hostname>
            <listen-socket>
                <port>8000</port>
            </listen-socket>
        </icecast>
        """,
    ),
    _t(
        "radio/icecast/icecast.xml.dist",
        "h28_placeholder_ca",
        False,
        r"""
        <icecast>
            <location>Sant Cugat del Vallès</location>
            <!-- Omple les contrasenyes abans d'arrencar (les té l'equip de Tècnica) -->
            <authentication>
                <source-password>{V}</source-password>
                <relay-password>{V2}</relay-password>
                <admin-user>admin</admin-user>
                <admin-password>{V3}</admin-password>
            </authentication>
            <hostname>stream.radiomarea.cat</hostname>
        </icecast>
        """,
    ),
    _t(
        "radio/icecast/htpasswd.estadistiques",
        "h28_apr1",
        False,
        r"""
        estadistiques:{V}
        programacio:{V2}
        """,
    ),
    _t(
        "radio/liquidsoap/marea_fm.liq",
        "h28_icecast_pw",
        True,
        r"""
        #!/usr/bin/liquidsoap
        # Ràdio Marea - sortida principal cap a l'Icecast (MP3 128k i AAC 64k)
        settings.log.file.path := "/var/log/liquidsoap/marea_fm.log"

        directe = input.harbor("directe", port=8005, password="{V}")
        musica = playlist(reload_mode="watch", "/srv/radio/playlists/marea_fm.m3u")
        radio = fallback(track_sensitive=false, [directe, musica, single("/srv/radio/silenci.mp3")])

        output.icecast(%mp3(bitrate=128), host="stream.radiomarea.cat", port=8000,
          password="{V2}", mount="marea_fm.mp3", name="Ràdio Marea", radio)
        """,
    ),
    _t(
        "radio/liquidsoap/marea_fm.liq",
        "h28_ref_liq",
        False,
        r"""
        #!/usr/bin/liquidsoap
        # Ràdio Marea - sortida principal cap a l'Icecast
        def icecast_pass() =
          environment.get("ICECAST_SOURCE_PASSWORD")
        end

        musica = playlist(reload_mode="watch", "/srv/radio/playlists/marea_fm.m3u")
        output.icecast(%mp3(bitrate=128), host="stream.radiomarea.cat", port=8000,
          password={V}, mount="marea_fm.mp3", name="Ràdio Marea", musica)
        """,
    ),
    _t(
        "radio/rds/push_radiotext.bat",
        "h28_weak_pw",
        True,
        r"""
        @echo off
        REM Envia el radiotext (tema que sona) als codificadors RDS dels centres emissors
        setlocal
        set RDS_USER=admin
        set RDS_PASS={V}
        set TEXT=%~1

        for %%H in (10.60.1.21 10.60.2.21 10.60.3.21) do (
            plink -batch -telnet %%H -P 23 -l %RDS_USER% -pw %RDS_PASS% "RT=%TEXT%"
        )
        endlocal
        """,
    ),
    _t(
        "radio/rds/push_radiotext.bat",
        "h28_ref_bat",
        False,
        r"""
        @echo off
        REM Envia el radiotext als codificadors RDS. La contrasenya ve de la variable de sistema.
        setlocal EnableDelayedExpansion
        set RDS_USER=admin
        set TEXT=%~1
        for %%H in (10.60.1.21 10.60.2.21) do (
            plink -batch -telnet %%H -P 23 -l %RDS_USER% -pw {V} "RT=%TEXT%"
        )
        endlocal
        """,
    ),
    _t(
        "radio/docs/guia-estudi-2.md",
        "h28_weak_pw",
        True,
        r"""
        # Guia ràpida de l'estudi 2 (Sant Cugat)

        ## Còdec IP per a connexions exteriors
        - Adreça web del còdec: `http://10.60.20.15`
        - Usuari: `tecnic`
        - Contrasenya: `{V}`

        ## Abans del directe
        1. Comprova que el senyal de retorn arriba a la taula.
        2. Truca a Continuïtat (ext. 2201) per confirmar la finestra.
        """,
    ),
    _t(
        "radio/docs/guia-estudi-3.md",
        "h28_redacted",
        False,
        r"""
        # Guia ràpida de l'estudi 3 (Sant Cugat)

        ## Còdec IP per a connexions exteriors
        - Adreça web del còdec: `http://10.60.20.16`
        - Usuari: `tecnic`
        - Contrasenya: {V} (demana-la a Tècnica, ext. 2230)

        ## Abans del directe
        1. Comprova que el senyal de retorn arriba a la taula.
        """,
    ),
    _t(
        "radio/app/src/main/res/values-ca/strings.xml",
        "h28_ui_ca",
        False,
        r"""
        <?xml version="1.0" encoding="utf-8"?>
        <resources>
            <string name="app_name">Ràdio Marea</string>
            <string name="login_password_hint">Contrasenya</string>
            <string name="login_error_password">{V}</string>
            <string name="login_forgot">{V2}</string>
        </resources>
        """,
    ),
]

# ---------------------------------------------------------------------------------------------
# Memòria Viva: archive digitisation (Archivematica, BagIt, B2 and Azure sync, notebooks)
# ---------------------------------------------------------------------------------------------
TEMPLATES += [
    _t(
        "archive/memoria-viva/transfers/start_transfer.py",
        "h28_hex40",
        True,
        r"""
        \"\"\"Lanza transferencias a Archivematica para cada lote de cintas digitalizadas.\"\"\"

        import base64
        import sys

        import requests

        AM_URL = "http://archivematica.archivo.mrj.internal"
        AM_USER = "memoria_viva"
        AM_API_KEY = "{V}"


        def start(batch: str) -> dict:
            path = base64.b64encode(f"ts-location:/lotes/{batch}".encode()).decode()
            resp = requests.post(
                f"{AM_URL}/api/transfer/start_transfer/",
                headers={"Authorization": f"ApiKey {AM_USER}:{AM_API_KEY}"},
                data={"name": batch, "type": "standard", "paths[]": path},
                timeout=60,
            )
            resp.raise_for_status()
            return resp.json()


        if __name__ == "__main__":
            print(start(sys.argv[1]))
        """,
    ),
    _t(
        "archive/memoria-viva/bags/BETACAM_1994_0412/manifest-sha256.txt",
        "h28_sha256",
        False,
        r"""
        {V}  data/BETACAM_1994_0412.mkv
        {V2}  data/BETACAM_1994_0412.framemd5
        {V3}  data/BETACAM_1994_0412_ficha.xml
        """,
    ),
    _t(
        "archive/memoria-viva/sync/b2_offsite.sh",
        "h28_b2_key",
        True,
        r"""
        #!/usr/bin/env bash
        # Copia externa de los AIP a Backblaze B2 (cifrado en cliente con rclone crypt)
        set -euo pipefail

        export RCLONE_CONFIG_B2_TYPE=b2
        export RCLONE_CONFIG_B2_ACCOUNT="${B2_KEY_ID}"
        export RCLONE_CONFIG_B2_KEY='{V}'

        rclone sync /srv/aip b2:gmm-memoria-viva-aip --transfers 8 --checksum --log-level INFO
        """,
    ),
    _t(
        "archive/memoria-viva/sync/rclone.conf",
        "h28_azure_conn",
        True,
        r"""
        [azure-archivo]
        type = azureblob
        connection_string = {V}
        access_tier = Archive

        [local-aip]
        type = local
        """,
    ),
    _t(
        "archive/memoria-viva/notebooks/fixity_report.ipynb",
        "h28_pw",
        True,
        r"""
        {
         "cells": [
          {
           "cell_type": "markdown",
           "metadata": {},
           "source": ["# Informe de fijeza (fixity) - lotes de 2024\n", "Comprueba los checksums de los AIP frente a la base de datos del proyecto."]
          },
          {
           "cell_type": "code",
           "execution_count": 3,
           "metadata": {},
           "outputs": [],
           "source": [
            "import pandas as pd\n",
            "import psycopg2\n",
            "conn = psycopg2.connect(host='pg-archivo.mrj.internal', dbname='memoria_viva', user='fixity', password='{V}')\n",
            "df = pd.read_sql('SELECT aip_uuid, algoritmo, valor, verificado_en FROM fixity WHERE lote LIKE %s', conn, params=['2024%'])"
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
        "archive/memoria-viva/notebooks/fixity_report_v2.ipynb",
        "h28_md5",
        False,
        r"""
        {
         "cells": [
          {
           "cell_type": "code",
           "execution_count": 5,
           "metadata": {},
           "outputs": [
            {
             "name": "stdout",
             "output_type": "stream",
             "text": ["BETACAM_1994_0412.mkv  esperado {V}  OK\n", "UMATIC_1987_0093.mkv   esperado {V2}  OK\n"]
            }
           ],
           "source": ["for row in df.itertuples():\n", "    print(row.fichero, 'esperado', row.valor, check(row))"]
          }
         ],
         "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
         "nbformat": 4,
         "nbformat_minor": 5
        }
        """,
    ),
    _t(
        "archive/memoria-viva/db/roles.sql",
        "h28_pg_verifier",
        False,
        r"""
        -- Roles de la base de datos del proyecto (volcado con pg_dumpall --roles-only)
        CREATE ROLE fixity;
        ALTER ROLE fixity WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN PASSWORD '{V}';
        CREATE ROLE catalogador;
        ALTER ROLE catalogador WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN PASSWORD '{V2}';
        """,
    ),
    _t(
        "archive/memoria-viva/catalogo/settings_local.py",
        "h28_pbkdf2",
        False,
        r"""
        # Fixture de usuarios del catálogo público (hashes generados por Django)
        CATALOG_FIXTURE_USERS = [
            {"username": "consulta", "password": "{V}", "is_staff": False},
            {"username": "documentalista", "password": "{V2}", "is_staff": True},
        ]
        """,
    ),
]

# ---------------------------------------------------------------------------------------------
# Shared infrastructure, CI, monitoring, studios (CDMX, Madrid, Sant Cugat), tickets
# ---------------------------------------------------------------------------------------------
TEMPLATES += [
    _t(
        "infra/aws/credentials",
        "h28_aws_pair_ini",
        True,
        r"""
        [default]
        region = eu-west-1

        [gmm-media-prod]
        {V}
        region = eu-west-1

        [gmm-archivo]
        {V2}
        region = eu-central-1
        """,
    ),
    _t(
        "infra/aws/credentials.example",
        "h28_aws_example_pair",
        False,
        r"""
        # Ejemplo (valores de la documentación de AWS). Usa `aws sso login --profile gmm-media-prod`.
        [gmm-media-prod]
        {V}
        region = eu-west-1
        """,
    ),
    _t(
        "infra/ci/.gitlab-ci.yml",
        "h28_aws_pair_ci",
        True,
        r"""
        stages: [build, deploy]

        variables:
          AWS_DEFAULT_REGION: eu-west-1

        deploy:transcoder:
          stage: deploy
          image: registry.gitlab.com/gitlab-org/cloud-deploy/aws-base:latest
          variables:
            {IV}
          script:
            - aws ecs update-service --cluster mareplay --service transcoder --force-new-deployment
          only: [main]
        """,
    ),
    _t(
        "infra/ci/.gitlab-ci.yml",
        "h28_ref_ci",
        False,
        r"""
        stages: [build, deploy]

        build:image:
          stage: build
          image: docker:26
          services: [docker:26-dind]
          script:
            - echo "{V}" | docker login -u "$CI_REGISTRY_USER" --password-stdin "$CI_REGISTRY"
            - docker build -t "$CI_REGISTRY_IMAGE:$CI_COMMIT_SHORT_SHA" .
            - docker push "$CI_REGISTRY_IMAGE:$CI_COMMIT_SHORT_SHA"
        """,
    ),
    _t(
        "infra/jenkins/credentials.xml",
        "h28_jenkins_secret",
        False,
        r"""
        <?xml version='1.1' encoding='UTF-8'?>
        <com.cloudbees.plugins.credentials.SystemCredentialsProvider plugin="credentials@1337.v60b_d7b_c7b_c9f">
          <domainCredentialsMap class="hudson.util.CopyOnWriteMap$Hash">
            <entry>
              <com.cloudbees.plugins.credentials.domains.Domain><specifications/></com.cloudbees.plugins.credentials.domains.Domain>
              <java.util.concurrent.CopyOnWriteArrayList>
                <com.cloudbees.plugins.credentials.impl.UsernamePasswordCredentialsImpl>
                  <id>registry-mrj</id>
                  <username>jenkins</username>
                  <password>{V}</password>
                </com.cloudbees.plugins.credentials.impl.UsernamePasswordCredentialsImpl>
              </java.util.concurrent.CopyOnWriteArrayList>
            </entry>
          </domainCredentialsMap>
        </com.cloudbees.plugins.credentials.SystemCredentialsProvider>
        """,
    ),
    _t(
        "infra/terraform/streaming/secrets.auto.tfvars",
        "h28_kms_blob",
        False,
        r"""
        # Cifrado con `aws kms encrypt --key-id alias/gmm-terraform`; se descifra en data.aws_kms_secrets
        encrypted_db_password       = "{V}"
        encrypted_playback_hmac_key = "{V2}"
        """,
    ),
    _t(
        "ops/alerting/alertmanager.yml",
        "h28_slack_webhook",
        True,
        r"""
        global:
          resolve_timeout: 5m
          slack_api_url: '{V}'

        route:
          receiver: emision-guardia
          group_by: [alertname, canal]
          routes:
            - matchers: [severity="critical"]
              receiver: emision-guardia

        receivers:
          - name: emision-guardia
            slack_configs:
              - channel: '#emision-alertas'
                send_resolved: true
        """,
    ),
    _t(
        "ops/alerting/alertmanager.yml",
        "h28_secret_path",
        False,
        r"""
        global:
          resolve_timeout: 5m
          slack_api_url_file: {V}

        route:
          receiver: emision-guardia

        receivers:
          - name: emision-guardia
            slack_configs:
              - channel: '#emision-alertas'
                send_resolved: true
        """,
    ),
    _t(
        "ops/alerting/notify_teams.py",
        "h28_teams_webhook",
        True,
        r"""
        \"\"\"Avisos de caída de señal de los estudios de CDMX al canal de Teams de Ingeniería.\"\"\"

        import requests

        WEBHOOK = "{V}"


        def alert(estudio: str, detalle: str) -> None:
            card = {"text": f"**Caída de señal** en {estudio}: {detalle}"}
            requests.post(WEBHOOK, json=card, timeout=10).raise_for_status()
        """,
    ),
    _t(
        "ops/alerting/notify_gchat.sh",
        "h28_gchat_webhook",
        True,
        r"""
        #!/bin/sh
        # Aviso al espacio de Google Chat de Distribución cuando termina una entrega
        WEBHOOK_URL='{V}'
        curl -sS -X POST -H 'Content-Type: application/json; charset=UTF-8' \
          -d "{\"text\": \"Entrega completada: $1\"}" "$WEBHOOK_URL"
        """,
    ),
    _t(
        "ops/alerting/docs/webhooks.md",
        "h28_doc_example",
        False,
        r"""
        # Webhooks de alertas

        Formato de la URL (ejemplo de la documentación del proveedor, no es real):

        ```
        {V}
        ```

        Las URLs reales se guardan en `/etc/gmm/secrets/` y se montan en el contenedor.
        """,
    ),
    _t(
        "ops/monitoring/datadog/datadog.yaml",
        "h28_hex32",
        True,
        r"""
        ## Agente de Datadog en los nodos de transcodificación
        api_key: {V}
        site: datadoghq.eu
        hostname_fqdn: true
        tags:
          - team:streaming
          - site:cdmx
        logs_enabled: true
        """,
    ),
    _t(
        "ops/elastic/filebeat.yml",
        "h28_es_key",
        True,
        r"""
        filebeat.inputs:
          - type: filestream
            id: playout-asrun
            paths: [/var/log/playout/*.log]

        output.elasticsearch:
          hosts: ["https://es.obs.mrj.internal:9200"]
          api_key: "{V}"
          ssl.certificate_authorities: ["/etc/filebeat/ca.crt"]
        """,
    ),
    _t(
        "ops/vault/bootstrap.sh",
        "h28_vault_token",
        True,
        r"""
        #!/usr/bin/env bash
        # Carga inicial de políticas de Vault para los equipos de streaming y archivo
        set -euo pipefail
        export VAULT_ADDR=https://vault.mrj.internal:8200
        export VAULT_TOKEN={V}

        vault policy write streaming-read policies/streaming-read.hcl
        vault policy write archivo-read policies/archivo-read.hcl
        vault auth enable -path=k8s-prod kubernetes || true
        """,
    ),
    _t(
        "ops/ssh/deploy_playout_bridge",
        "h28_openssh",
        True,
        r"""
        {V}
        """,
    ),
    _t(
        "ops/ssh/authorized_keys",
        "h28_ssh_pub",
        False,
        r"""
        # Acceso al bastión (Ingeniería de Emisión)
        {V}
        {V2}
        {V3}
        """,
    ),
    _t(
        "ops/tls/marejada-wildcard-2024.crt",
        "h28_cert",
        False,
        r"""
        {V}
        """,
    ),
    _t(
        "ops/tls/legacy/wowza-origin.key",
        "h28_legacy_enc_key",
        False,
        r"""
        {V}
        """,
    ),
    _t(
        "ops/users/mysql_grants.sql",
        "h28_mysql_hash",
        False,
        r"""
        -- Usuarios del MySQL de la web de Marea 24h (exportado con pt-show-grants)
        CREATE USER IF NOT EXISTS 'wp_marea24h'@'10.%' IDENTIFIED WITH 'mysql_native_password' AS '{V}';
        GRANT SELECT, INSERT, UPDATE, DELETE ON `marea24h_wp`.* TO 'wp_marea24h'@'10.%';
        CREATE USER IF NOT EXISTS 'lectura_bi'@'10.%' IDENTIFIED WITH 'mysql_native_password' AS '{V2}';
        GRANT SELECT ON `marea24h_wp`.* TO 'lectura_bi'@'10.%';
        """,
    ),
    _t(
        "ops/cloud-init/transcoder-node.yaml",
        "h28_sha512crypt",
        False,
        r"""
        #cloud-config
        hostname: mrj-tx-node
        users:
          - name: ingenieria
            groups: [sudo, video]
            shell: /bin/bash
            lock_passwd: false
            passwd: "{V}"
        packages: [ffmpeg, nvidia-driver-535]
        """,
    ),
    _t(
        "ops/security/politica-contrasenas.yaml",
        "h28_policy_num",
        False,
        r"""
        # Política de contraseñas del directorio corporativo (aplica a CDMX, Madrid y Sant Cugat)
        password_policy:
          min_length: {V}
          require_symbols: true
          max_age_days: 90
          history: {V2}
          lockout_threshold: 5
        """,
    ),
    _t(
        "ops/tickets/OPS-4412.txt",
        "h28_gitlab",
        True,
        r"""
        OPS-4412  [Streaming] El job de despliegue no puede clonar el repo de plantillas
        Estado: Resuelto · Prioridad: Alta · Reportado por: a.rios

        Descripción:
        El runner de CDMX devuelve 403 al clonar grupo-marejada/plantillas-grafismo.
        Para desbloquear he puesto en la variable del proyecto mi token personal:
            {V}
        (caduca a final de mes, hay que cambiarlo por un token de despliegue)

        Comentario (j.vidal): hecho, ya pasa el pipeline.
        """,
    ),
    _t(
        "ops/tickets/OPS-4431.txt",
        "h28_masked",
        False,
        r"""
        OPS-4431  [Seguridad] Rotar el token personal usado en el runner de CDMX
        Estado: Cerrado · Prioridad: Media

        Se revoca el token {V} y se sustituye por un deploy token de
        solo lectura con ámbito read_repository. Verificado por j.vidal.
        """,
    ),
    _t(
        "ops/tickets/OPS-4520.txt",
        "h28_atlassian",
        True,
        r"""
        OPS-4520  [Redacción] Integración de Jira con el calendario de coberturas
        Estado: En curso

        El script de sincronización necesita una cuenta de servicio. De momento usa:
          usuario: coberturas-bot@marejada.media
          token API: {V}

        Pendiente: mover a Vault antes de pasar a producción.
        """,
    ),
    _t(
        "studios/cdmx/scripts/montar_nas.sh",
        "h28_url_pw",
        True,
        r"""
        #!/bin/bash
        # Monta el NAS de edición de Estudios Marejada CDMX en las estaciones de postproducción
        mkdir -p /mnt/edicion
        mount -t cifs //nas-edicion.cdmx.mrj.internal/proyectos /mnt/edicion \
          -o username=postpro,password='{V}',domain=MAREJADA,vers=3.0,uid=1000,gid=1000
        """,
    ),
    _t(
        "studios/cdmx/scripts/montar_nas_v2.sh",
        "h28_secret_path",
        False,
        r"""
        #!/bin/bash
        # Monta el NAS de edición (las credenciales viven en un fichero 0600 fuera del repo)
        mkdir -p /mnt/edicion
        mount -t cifs //nas-edicion.cdmx.mrj.internal/proyectos /mnt/edicion \
          -o credentials={V},vers=3.0,uid=1000,gid=1000
        """,
    ),
    _t(
        "studios/santcugat/vpn/unitat-mobil-3.ovpn",
        "h28_pkcs8",
        True,
        r"""
        client
        dev tun
        proto udp
        remote vpn.marejada.media 1194
        resolv-retry infinite
        nobind
        cipher AES-256-GCM
        verb 3
        remote-cert-tls server
        ca ca.crt
        cert unitat-mobil-3.crt
        <key>
        {V}
        </key>
        """,
    ),
    _t(
        "studios/madrid/README.md",
        "h28_placeholder_es",
        False,
        r"""
        # Plató 4 (Madrid) - notas de instalación

        - Mesa de realización en `10.70.4.10`; usuario `operador`, contraseña `{V}`.
        - El teleprompter se conecta al ENPS por MOS (ver runbook de redacción).
        - El Wi-Fi de invitados se gestiona desde recepción; no se documenta aquí.
        """,
    ),
    _t(
        "studios/madrid/tests/test_prompter_bridge.py",
        "h28_fake",
        False,
        r"""
        from prompter_bridge import MosClient


        def test_login_uses_configured_password(mocker):
            sock = mocker.patch("prompter_bridge.socket.create_connection")
            client = MosClient(host="127.0.0.1", user="operador", password="{V}")  # valor falso
            client.connect()
            sock.assert_called_once()
        """,
    ),
]
