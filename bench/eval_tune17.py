"""Blind part ``tune17``: a regional media and publishing group (Northgate Media Group, NMG:
The Harwick Courier, Lakeside Gazette, Pulse Weekly) with a long legacy web estate, and the
agencies it hires (Bluewire Digital, Fathom & Fold). Files are CMS configs and dumps (WordPress,
Bedrock, Drupal, Joomla, Magento 2, TYPO3, Ghost), legacy leftovers (Perl CGI/DBI, ColdFusion,
classic ASP), newsroom tools (Node/Express, Rails, Django), ad-tech and analytics integrations
(Prebid, GTM/GA4, Meta CAPI, Parse.ly, reCAPTCHA, Algolia, ads.txt), video and streaming pipelines (FFmpeg
scripts, Wowza, nginx-rtmp, S3/CloudFront, Mux, Brightcove, YouTube), newsletters
(Mailchimp, SendGrid, Mailgun, Postfix, PHPMailer, msmtp), paywall and payment code (Stripe,
Braintree, PayPal, Piano), mobile reader apps (Gradle, fastlane, App Store Connect,
OneSignal), Docker Compose, Kubernetes and Helm, CI (Jenkins, GitHub Actions, Bitbucket
Pipelines), SFTP/FTP syndication scripts, and agency handover docs in Markdown, plain text and
HTML. Written blind (without seeing the scanner, its rules or other parts' templates).

Look-alikes sit in the same kinds of files under the same key names: CMS password hashes
(phpass, Drupal 7, bcrypt, argon2), values encrypted by the platform (Magento ``0:3:``,
ColdFusion, Jenkins, Rails credentials, SOPS, sealed secrets, Ansible Vault), references to
environment or secret stores, placeholders and the stock WordPress sample phrases, public
identifiers that share a secret's shape (reCAPTCHA site keys, Algolia search-only keys, Ghost
Content API keys, Stripe publishable keys, Cloudflare zone ids, ads.txt TAG-IDs, SendGrid
template ids, public Sentry DSNs), public keys and digests, UI text about passwords, example
credentials on documentation hosts and clearly fake test values.
"""

from __future__ import annotations

import base64
import string
import textwrap

import evalset

MULTI_SLOT = True

HEX = "0123456789abcdef"
HEXU = "0123456789ABCDEF"
ALNUM = string.ascii_letters + string.digits
URLSAFE = ALNUM + "-_"
ITOA64 = "./" + string.digits + string.ascii_uppercase + string.ascii_lowercase
UPNUM = string.ascii_uppercase + string.digits
LOWNUM = string.ascii_lowercase + string.digits


class Tune17Values(evalset.Values):
    """Value generators of the tune17 part; every name starts with ``t17_``."""

    def __init__(self, seed: int, flavour: str) -> None:
        super().__init__(seed, flavour)
        self.words = [
            "masthead",
            "byline",
            "broadsheet",
            "linotype",
            "standfirst",
            "kicker",
            "gutter",
            "pica",
            "newsprint",
            "harwick",
        ]
        self.users = [
            "wp_courier",
            "nmg_admin",
            "newsdesk",
            "syndication",
            "video_ops",
            "mailer",
            "paywall",
            "bluewire_dev",
        ]

    # -- credentials --------------------------------------------------------------------
    def t17_pw(self) -> str:
        rng = self.rng
        word = self.pick(self.words)
        shape = rng.randrange(6)
        if shape == 0:
            return word.capitalize() + str(rng.randrange(2009, 2027)) + rng.choice("!#$*?")
        if shape == 1:
            return self.s(rng.randrange(12, 21), ALNUM + "#%*-_.!@")
        if shape == 2:
            other = self.pick(self.words)
            return f"{word.capitalize()}&{other.capitalize()}{self.s(2, string.digits)}"
        if shape == 3:
            return self.s(rng.randrange(14, 25), ALNUM)
        if shape == 4:
            return word.replace("a", "@").replace("e", "3").capitalize() + self.s(3, string.digits)
        return f"{self.s(4, LOWNUM)}-{self.s(4, LOWNUM)}-{self.s(4, LOWNUM)}-{self.s(4, LOWNUM)}"

    def t17_weak(self) -> str:
        return self.pick(
            [
                self.pick(self.words) + self.pick(["1", "123", "2020", "!", "01"]),
                "admin123",
                "password1",
                "Courier2019!",
                "wordpress",
                "letmein1",
                "Welcome1",
                "Newsroom2023",
                "gazette123",
                "Summer2024!",
                "qwerty123",
                "Pa$$w0rd",
                "Pulse2022",
                "nmg12345",
                "secret123",
            ]
        )

    def t17_urlpw(self) -> str:
        if self.rng.randrange(2):
            return self.pick(self.words).capitalize() + self.s(4, string.digits)
        return self.s(self.rng.randrange(12, 22), ALNUM + "-_.~")

    def t17_wpsalt(self) -> str:
        return self.s(64, ALNUM + "!#$%&()*+,-./:;<=>?@[]^_`{|}~ ")

    def t17_drupal_salt(self) -> str:
        return base64.urlsafe_b64encode(self.rng.randbytes(55)).decode().rstrip("=")

    def t17_hex32(self) -> str:
        return self.s(32, HEX)

    def t17_typo3_key(self) -> str:
        return self.s(96, HEX)

    def t17_rails_skb(self) -> str:
        return self.s(128, HEX)

    def t17_django_key(self) -> str:
        if self.rng.randrange(3) == 0:
            return "django-insecure-" + self.s(50, LOWNUM + "!@#%^&*(-_=+)")
        return self.s(50, LOWNUM + "!@#%^&*(-_=+)")

    def t17_ghost_admin(self) -> str:
        return f"{self.s(24, HEX)}:{self.s(64, HEX)}"

    def t17_stripe(self) -> str:
        if self.rng.randrange(4) == 0:
            return "rk_live_51" + self.s(97)
        if self.rng.randrange(3) == 0:
            return "sk_live_" + self.s(24)
        return "sk_live_51" + self.s(97)

    def t17_whsec(self) -> str:
        return self.stripe_whsec()

    def t17_paypal(self) -> str:
        return "E" + self.s(79, URLSAFE)

    def t17_braintree(self) -> str:
        return self.s(32, HEX)

    def t17_fb_token(self) -> str:
        return "EAA" + self.s(1, "BGIJ") + self.s(self.rng.randrange(150, 200))

    def t17_stream_key(self) -> str:
        shape = self.rng.randrange(3)
        if shape == 0:
            return "-".join(self.s(4, LOWNUM) for _ in range(5))
        if shape == 1:
            return f"live_{self.rng.randrange(10**8, 10**9)}_{self.s(30)}"
        return f"FB-{self.rng.randrange(10**15, 10**16)}-0-Ab{self.s(38, URLSAFE)}"

    def t17_recaptcha_secret(self) -> str:
        return "6L" + self.s(1, "cdefe") + self.s(37, URLSAFE)

    def t17_ga_secret(self) -> str:
        return self.s(22, URLSAFE)

    def t17_bitbucket(self) -> str:
        return "ATBB" + self.s(24) + self.s(8, HEXU)

    def t17_docker_auth(self) -> str:
        user = self.pick(["nmgbuild", "bluewire", "_json_key_base64", "AWS", "ci-pusher"])
        return base64.b64encode(f"{user}:{self.t17_pw()}".encode()).decode()

    def t17_b64pw(self) -> str:
        pw = self.t17_pw() if self.rng.randrange(3) else self.t17_weak()
        return base64.b64encode(pw.encode()).decode()

    def t17_sa_token(self) -> str:
        return self.jwt()

    def t17_signing(self) -> str:
        shape = self.rng.randrange(4)
        if shape == 0:
            return self.s(64, HEX)
        if shape == 1:
            return self.s(self.rng.randrange(32, 49), ALNUM)
        if shape == 2:
            return f"{self.pick(['courier', 'pulse', 'nmg', 'gazette'])}-{self.pick(['paywall', 'session', 'jwt', 'preview'])}-{self.s(12, LOWNUM)}"
        return base64.b64encode(self.rng.randbytes(32)).decode()

    def t17_token(self) -> str:
        return self.s(self.rng.randrange(32, 49))

    def t17_edgerc(self) -> str:
        def akab() -> str:
            return f"akab-{self.s(16, LOWNUM)}-{self.s(16, LOWNUM)}"

        return (
            f"client_secret = {base64.b64encode(self.rng.randbytes(32)).decode()}\n"
            f"host = akab-{self.s(16, LOWNUM)}-{self.s(16, LOWNUM)}.luna.akamaiapis.net\n"
            f"access_token = {akab()}\n"
            f"client_token = {akab()}"
        )

    def t17_cloudflare(self) -> str:
        return self.s(40, URLSAFE)

    def t17_cloudinary(self) -> str:
        return (
            f"cloudinary://{self.rng.randrange(10**14, 10**15)}:{self.s(27, URLSAFE)}"
            f"@{self.pick(['nmg-media', 'harwick-courier', 'pulseweekly'])}"
        )

    def t17_mux_secret(self) -> str:
        return self.s(75, ALNUM + "/+")

    def t17_brightcove(self) -> str:
        return self.s(86, URLSAFE)

    def t17_youtube_key(self) -> str:
        return self.google()

    def t17_onesignal_rest(self) -> str:
        return base64.b64encode(self.request_id().encode()).decode()

    def t17_p8(self) -> str:
        return self.pem("PRIVATE KEY", 3)

    def t17_gcp_key(self) -> str:
        return self.gcp_private_key()

    def t17_openssh(self) -> str:
        return self.openssh_key()

    def t17_rsa(self) -> str:
        return self.pem("RSA PRIVATE KEY", self.rng.randrange(12, 17))

    def t17_kube_key(self) -> str:
        return self.b64_pem()

    def t17_aws_ini(self) -> str:
        return self.aws_ini_pair()

    def t17_aws_env(self) -> str:
        return self.aws_env_pair()

    def t17_aws_yaml(self) -> str:
        return self.aws_yaml_pair()

    def t17_aws_args(self) -> str:
        return self.aws_boto_args()

    def t17_slack_hook(self) -> str:
        return self.slack_webhook()

    def t17_teams_hook(self) -> str:
        return self.teams_webhook()

    def t17_github(self) -> str:
        return self.github()

    def t17_npm(self) -> str:
        return self.npm()

    def t17_sendgrid(self) -> str:
        return self.sendgrid()

    def t17_mailchimp(self) -> str:
        return self.mailchimp()

    def t17_mailgun(self) -> str:
        return self.mailgun()

    def t17_basic(self) -> str:
        return base64.b64encode(f"{self.pick(self.users)}:{self.t17_pw()}".encode()).decode()

    def t17_cpanel(self) -> str:
        return self.s(32, UPNUM)

    def t17_filezilla(self) -> str:
        return base64.b64encode(self.t17_pw().encode()).decode()

    def t17_slack_bot(self) -> str:
        return self.slack()

    # -- look-alikes ----------------------------------------------------------------------
    def t17_ph(self) -> str:
        return self.pick(
            [
                "database_password_here",
                "CHANGE_ME",
                "<your-password>",
                "xxxxxxxx",
                "********",
                "YOUR_API_KEY",
                "TBC",
                "REPLACE_ME",
                "<ask Bluewire>",
                "your-stream-key",
                "%%SMTP_PASSWORD%%",
                "<redacted>",
                "[in LastPass]",
                "password_here",
                "XXXXXXXXXXXXXXXX",
                "changeme",
            ]
        )

    def t17_wp_sample(self) -> str:
        return "put your unique phrase here"

    def t17_ref_php(self) -> str:
        return self.pick(
            [
                "getenv('DB_PASSWORD')",
                "$_ENV['DB_PASSWORD']",
                "$_SERVER['NMG_DB_PASS']",
                "env('DB_PASSWORD')",
                "getenv('WP_DB_PASSWORD') ?: ''",
                "trim(file_get_contents('/run/secrets/db_password'))",
            ]
        )

    def t17_ref_js(self) -> str:
        return self.pick(
            [
                "process.env.SESSION_SECRET",
                "process.env.DB_PASSWORD",
                "config.get('mailchimp.apiKey')",
                "process.env['STRIPE_SECRET_KEY']",
                "secrets.jwtSigningKey",
                "await getSecret('paywall/jwt')",
            ]
        )

    def t17_ref_rb(self) -> str:
        return self.pick(
            [
                "ENV['DATABASE_PASSWORD']",
                "ENV.fetch('SECRET_KEY_BASE')",
                "Rails.application.credentials.dig(:smtp, :password)",
                "ENV.fetch('NEWSDESK_DB_PASSWORD') { nil }",
            ]
        )

    def t17_ref_py(self) -> str:
        return self.pick(
            [
                'os.environ["DJANGO_SECRET_KEY"]',
                'os.getenv("DB_PASSWORD")',
                'env("DATABASE_PASSWORD")',
                'get_secret("newsdesk/db")["password"]',
                "config('EMAIL_HOST_PASSWORD')",
            ]
        )

    def t17_ref_ci(self) -> str:
        return self.pick(
            [
                "$FTP_PASSWORD",
                "${SFTP_PASS}",
                "$BITBUCKET_FTP_PASSWORD",
                '"$FTP_PASSWORD"',
                "${FTP_PASS}",
            ]
        )

    def t17_ref_gha(self) -> str:
        return self.pick(
            [
                "${{ secrets.FTP_PASSWORD }}",
                "${{ secrets.GAZETTE_FTP_PASSWORD }}",
                "${{ secrets.KEYSTORE_PASSWORD }}",
                "${{ secrets.DEPLOY_PASSWORD }}",
            ]
        )

    def t17_ref_jenkins(self) -> str:
        return self.pick(["${DEPLOY_PASS_PSW}", "$DEPLOY_PASS", "${env.DEPLOY_PASSWORD}"])

    def t17_ref_jcasc(self) -> str:
        return self.pick(
            [
                "${JENKINS_ADMIN_PASSWORD}",
                "${readFile:/run/secrets/jenkins-admin}",
                '"${vault.admin_password}"',
            ]
        )

    def t17_ref_compose(self) -> str:
        return self.pick(
            ["${DB_PASSWORD}", "${DB_PASSWORD:?}", "${MAIL_PASSWORD:-}", "${SERVICE_PASSWORD}"]
        )

    def t17_ref_kibana(self) -> str:
        return self.pick(
            ["${KIBANA_SYSTEM_PASSWORD}", "${KIBANA_ENCRYPTION_KEY}", "${ELASTIC_PASSWORD}"]
        )

    def t17_ref_npm(self) -> str:
        return self.pick(["${NPM_TOKEN}", "${GITHUB_PACKAGES_TOKEN}", "${NODE_AUTH_TOKEN}"])

    def t17_ref_gradle(self) -> str:
        return self.pick(
            [
                'System.getenv("KEY_PASSWORD")',
                "keystoreProperties['keyPassword']",
                'project.findProperty("courierKeyPassword") ?: ""',
            ]
        )

    def t17_ref_mobile(self) -> str:
        return self.pick(
            [
                'ENV["MATCH_GIT_BASIC_AUTHORIZATION"]',
                'ENV.fetch("ASC_KEY_CONTENT")',
                'ENV["FASTLANE_SECRET"]',
            ]
        )

    def t17_ref_sh(self) -> str:
        return self.pick(
            [
                '"$(aws ssm get-parameter --name /nmg/wowza/publish --with-decryption --query Parameter.Value --output text)"',
                '"${WOWZA_PUBLISH_PASS:?set it}"',
                '"$(pass show nmg/syndication/pa-media)"',
                '"$(cat /etc/nmg/ftp.pass)"',
                '"$STREAM_KEY"',
            ]
        )

    def t17_helm_ref(self) -> str:
        return self.pick(
            [
                "{{ .Values.mariadb.auth.password | quote }}",
                '{{ required "db password" .Values.db.password | quote }}',
                "{{ .Values.global.smtp.password | b64enc | quote }}",
                '{{ include "newsdesk.secretName" . }}',
            ]
        )

    def t17_secret_name(self) -> str:
        return self.pick(
            [
                "wordpress-db",
                "newsdesk-secrets",
                "ghost-mail",
                "regcred",
                "paywall-stripe",
                "mysql-auth",
            ]
        )

    def t17_op_ref(self) -> str:
        return self.pick(
            [
                "op://Agency Handover/Courier WordPress/password",
                "1Password > NMG Digital > Lakeside Gazette cPanel",
                "LastPass shared folder 'Shared-NMG-Web'",
                "Bitwarden collection NMG / Syndication",
                "vault kv get secret/nmg/wowza",
            ]
        )

    def t17_phpass(self) -> str:
        return "$P$B" + self.s(31, ITOA64)

    def t17_drupal7(self) -> str:
        return "$S$D" + self.s(51, ITOA64)

    def t17_md5(self) -> str:
        return self.s(32, HEX)

    def t17_bcrypt(self) -> str:
        return "$2y$10$" + self.s(53, ITOA64)

    def t17_argon2(self) -> str:
        return self.argon2()

    def t17_apr1(self) -> str:
        return self.apr1()

    def t17_descrypt(self) -> str:
        return self.s(13, ITOA64)

    def t17_pbkdf2(self) -> str:
        return self.pbkdf2_django()

    def t17_magento_enc(self) -> str:
        return "0:3:" + base64.b64encode(self.rng.randbytes(self.rng.randrange(40, 72))).decode()

    def t17_cf_enc(self) -> str:
        return base64.b64encode(self.rng.randbytes(self.pick([16, 24, 32]))).decode()

    def t17_cf_hash(self) -> str:
        return self.s(64, HEXU)

    def t17_jenkins_enc(self) -> str:
        return self.tune6_jenkins_secret()

    def t17_vault(self) -> str:
        return self.ansible_vault()

    def t17_sops(self) -> str:
        return self.sops_value()

    def t17_sealed(self) -> str:
        return self.sealed()

    def t17_rails_enc(self) -> str:
        return self.tune6_rails_enc()

    def t17_sri(self) -> str:
        return (
            self.pick(["sha384-", "sha512-"])
            + base64.b64encode(self.rng.randbytes(self.pick([48, 64]))).decode()
        )

    def t17_gitsha(self) -> str:
        return self.git_sha()

    def t17_sha256(self) -> str:
        return self.digest()

    def t17_image_digest(self) -> str:
        return "sha256:" + self.s(64, HEX)

    def t17_asset_hash(self) -> str:
        return self.s(self.pick([8, 12, 20]), HEX)

    def t17_sshpub(self) -> str:
        if self.rng.randrange(2):
            return self.ssh_public()
        body = base64.b64encode(b"\x00\x00\x00\x07ssh-rsa" + self.rng.randbytes(270)).decode()
        return f"ssh-rsa {body} {self.pick(self.users)}@nmg"

    def t17_pgp_pub(self) -> str:
        return self.pgp_public()

    def t17_cert(self) -> str:
        return self.certificate()

    def t17_fingerprint(self) -> str:
        return "SHA256:" + base64.b64encode(self.rng.randbytes(32)).decode().rstrip("=")

    def t17_hostkey(self) -> str:
        body = base64.b64encode(
            b"\x00\x00\x00\x13ecdsa-sha2-nistp256" + self.rng.randbytes(90)
        ).decode()
        return f"ecdsa-sha2-nistp256 {body}"

    def t17_dkim(self) -> str:
        return (
            "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQ"
            + base64.b64encode(self.rng.randbytes(129)).decode()
        )

    def t17_ga_id(self) -> str:
        return self.pick(
            [
                "G-" + self.s(10, UPNUM),
                f"UA-{self.rng.randrange(10**6, 10**8)}-{self.rng.randrange(1, 9)}",
                "GTM-" + self.s(7, UPNUM),
                "AW-" + self.s(10, string.digits),
            ]
        )

    def t17_fb_app_id(self) -> str:
        return str(self.rng.randrange(10**14, 10**16))

    def t17_cf_zone(self) -> str:
        return self.s(32, HEX)

    def t17_recaptcha_site(self) -> str:
        return "6L" + self.s(1, "cdefe") + self.s(37, URLSAFE)

    def t17_recaptcha_test(self) -> str:
        return self.pick(
            [
                "6LeIxAcTAAAAAJcZVRqyHh71UMIEGNQ_MXjiZKhI",
                "6LeIxAcTAAAAAGG-vFI1TnRWxMZNFuojJ4WifJWe",
            ]
        )

    def t17_algolia_search(self) -> str:
        return self.s(32, HEX)

    def t17_ghost_content(self) -> str:
        return self.s(26, HEX)

    def t17_stripe_pk(self) -> str:
        return self.pick(["pk_live_51", "pk_test_51"]) + self.s(97)

    def t17_sentry_dsn(self) -> str:
        return (
            f"https://{self.s(32, HEX)}@o{self.rng.randrange(10**5, 10**6)}.ingest.sentry.io/"
            f"{self.rng.randrange(10**6, 10**7)}"
        )

    def t17_uuid(self) -> str:
        return self.request_id()

    def t17_piano_aid(self) -> str:
        return self.s(10, ALNUM)

    def t17_mc_list(self) -> str:
        return self.s(10, HEX)

    def t17_cf_dist(self) -> str:
        return "E" + self.s(13, UPNUM)

    def t17_aws_account(self) -> str:
        return self.s(12, string.digits)

    def t17_apple_team(self) -> str:
        return self.s(10, UPNUM)

    def t17_bidder_id(self) -> str:
        return str(self.rng.randrange(10**4, 10**8))

    def t17_player_id(self) -> str:
        return self.s(8, ALNUM)

    def t17_youtube_id(self) -> str:
        return self.s(11, URLSAFE)

    def t17_sg_template(self) -> str:
        return "d-" + self.s(32, HEX)

    def t17_tag_id(self) -> str:
        return self.pick(
            ["f08c47fec0942fa0", "5d62403b186f2ace", "e1a5b5b6e3255540", self.s(16, HEX)]
        )

    def t17_presigned(self) -> str:
        return (
            f"https://nmg-video-masters.s3.eu-west-2.amazonaws.com/raw/{self.s(11, URLSAFE)}.mp4"
            f"?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={self.aws_id()}%2F20210614%2F"
            f"eu-west-2%2Fs3%2Faws4_request&X-Amz-Date=20210614T091502Z&X-Amz-Expires=900"
            f"&X-Amz-SignedHeaders=host&X-Amz-Signature={self.s(64, HEX)}"
        )

    def t17_stripe_sig(self) -> str:
        return f"t={1690000000 + self.rng.randrange(10**7)},v1={self.s(64, HEX)}"

    def t17_nonce(self) -> str:
        return self.s(10, HEX)

    def t17_text(self) -> str:
        return self.pick(
            [
                "Enter your password to keep reading",
                "Your subscription password has been reset. Check your inbox.",
                "Password must be at least 10 characters",
                "Forgotten your password?",
                "Incorrect email address or password",
                "The stream key is shown once in the Wowza Streaming Engine Manager",
                "API key is missing or invalid",
                "Please confirm your new password",
            ]
        )

    def t17_i18n(self) -> str:
        return self.pick(
            [
                "Passwort vergessen?",
                "Mot de passe incorrect",
                "Contraseña olvidada",
                "Hasło musi mieć co najmniej 10 znaków",
                "Wachtwoord vergeten?",
                "Password dimenticata?",
                "Glemt passord?",
            ]
        )

    def t17_example(self) -> str:
        return self.pick(self.words) + self.s(3, string.digits)

    def t17_fake(self) -> str:
        return self.pick(
            [
                "fake-api-key",
                "FAKE_SECRET",
                "dummy-token",
                "not-a-real-secret",
                "test-key-do-not-use",
                "mock_access_token",
                "fake-secret-value",
                "xxx-test-xxx",
            ]
        )

    def t17_path(self) -> str:
        return self.pick(
            [
                "/run/secrets/db_password",
                "/etc/nmg/secrets/ftp.pass",
                "~/.ssh/syndication_ed25519",
                "/var/www/private/hash_salt.txt",
                "/opt/wowza/conf/publish.password",
            ]
        )

    def t17_number(self) -> str:
        return self.pick(["8", "10", "12", "3600", "86400", "900", "30"])


VALUES = Tune17Values


def _t(path: str, gen: str, positive: bool, text: str) -> evalset.Template:
    return (path, textwrap.dedent(text).lstrip("\n"), gen, positive)


TEMPLATES: list[evalset.Template] = [
    # ---------------------------------------------------------------- WordPress / Bedrock
    _t(
        "sites/harwick-courier/wp-config.php",
        "t17_pw",
        True,
        """
        <?php
        /** The Harwick Courier - production (migrated from the old Rackspace box, 2017) */
        define( 'DB_NAME', 'courier_wp' );
        define( 'DB_USER', 'wp_courier' );
        define( 'DB_PASSWORD', '{V}' );
        define( 'DB_HOST', 'mysql-prod-01.nmg-media.net' );
        define( 'DB_CHARSET', 'utf8mb4' );
        define( 'DB_COLLATE', '' );

        $table_prefix = 'hc_';

        define( 'WP_DEBUG', false );
        define( 'DISALLOW_FILE_EDIT', true );
        """,
    ),
    _t(
        "sites/harwick-courier/wp-config.php.salts",
        "t17_wpsalt",
        True,
        """
        <?php
        // generated from https://api.wordpress.org/secret-key/1.1/salt/ on go-live
        define('AUTH_KEY',         '{V}');
        define('SECURE_AUTH_KEY',  '{V2}');
        define('LOGGED_IN_KEY',    '{V3}');
        define('NONCE_KEY',        '{V4}');
        define('AUTH_SALT',        '{V5}');
        define('SECURE_AUTH_SALT', '{V6}');
        """,
    ),
    _t(
        "sites/lakeside-gazette/wp-config-sample.php",
        "t17_wp_sample",
        False,
        """
        <?php
        /**#@+
         * Authentication unique keys and salts.
         *
         * Change these to different unique phrases! You can generate these using
         * the {@link https://api.wordpress.org/secret-key/1.1/salt/ WordPress.org secret-key service}.
         */
        define( 'AUTH_KEY',         '{V}' );
        define( 'SECURE_AUTH_KEY',  '{V2}' );
        define( 'LOGGED_IN_KEY',    '{V3}' );
        define( 'NONCE_KEY',        '{V4}' );
        /**#@-*/
        """,
    ),
    _t(
        "sites/lakeside-gazette/wp-config.php",
        "t17_ref_php",
        False,
        """
        <?php
        // Bluewire: all secrets come from the container environment, see docker/.env.example
        define( 'DB_NAME', getenv('WP_DB_NAME') ?: 'gazette' );
        define( 'DB_USER', getenv('WP_DB_USER') ?: 'gazette' );
        define( 'DB_PASSWORD', {V} );
        define( 'DB_HOST', getenv('WP_DB_HOST') ?: 'db:3306' );
        define( 'WP_REDIS_PASSWORD', {V2} );
        define( 'WP_HOME', 'https://www.lakesidegazette.com' );
        define( 'WP_SITEURL', WP_HOME . '/wp' );
        """,
    ),
    _t(
        "sites/pulse-weekly/.env",
        "t17_pw",
        True,
        """
        # Bedrock .env - production (pulse-web-02)
        DB_NAME=pulse_bedrock
        DB_USER=pulse
        DB_PASSWORD='{V}'
        DB_HOST=10.20.4.15

        WP_ENV=production
        WP_HOME=https://www.pulseweekly.com
        WP_SITEURL=${WP_HOME}/wp

        # Mail via the group relay
        SMTP_USER=noreply@pulseweekly.com
        SMTP_PASS={V2}
        """,
    ),
    _t(
        "sites/pulse-weekly/.env.example",
        "t17_ph",
        False,
        """
        DB_NAME=database_name
        DB_USER=database_user
        DB_PASSWORD={V}

        WP_ENV=development
        WP_HOME=http://pulse.test
        WP_SITEURL=${WP_HOME}/wp

        # Generate with wp dotenv salts regenerate
        AUTH_KEY='generateme'
        SECURE_AUTH_KEY='generateme'
        SMTP_PASS={V2}
        """,
    ),
    _t(
        "sites/harwick-courier/db/hc_users-2019-sanitised.sql",
        "t17_phpass",
        False,
        """
        -- partial export for the Fathom & Fold migration, personal data removed
        LOCK TABLES `hc_users` WRITE;
        INSERT INTO `hc_users` (`ID`, `user_login`, `user_pass`, `user_nicename`, `user_email`, `user_registered`, `user_status`, `display_name`) VALUES
        (1,'courieradmin','{V}','courieradmin','webteam@harwickcourier.co.uk','2011-03-02 10:14:21',0,'Web Team'),
        (14,'jmorrow','{V2}','jmorrow','j.morrow@harwickcourier.co.uk','2013-09-17 08:01:55',0,'Jess Morrow'),
        (212,'sportsdesk','{V3}','sportsdesk','sport@harwickcourier.co.uk','2016-01-04 16:40:02',0,'Sports Desk');
        UNLOCK TABLES;
        """,
    ),
    _t(
        "sites/harwick-courier/docker-compose.yml",
        "t17_weak",
        True,
        """
        version: "3.8"
        services:
          db:
            image: mariadb:10.6
            environment:
              MYSQL_ROOT_PASSWORD: {V}
              MYSQL_DATABASE: courier_wp
              MYSQL_USER: wp_courier
              MYSQL_PASSWORD: {V2}
            volumes:
              - dbdata:/var/lib/mysql
          wordpress:
            image: wordpress:6.4-php8.2-apache
            depends_on: [db]
            environment:
              WORDPRESS_DB_HOST: db
              WORDPRESS_DB_USER: wp_courier
              WORDPRESS_DB_PASSWORD: {V2}
            ports:
              - "8080:80"
        volumes:
          dbdata:
        """,
    ),
    _t(
        "sites/harwick-courier/wp-content/themes/courier/functions.php",
        "t17_nonce",
        False,
        """
        <?php
        add_action( 'wp_enqueue_scripts', function () {
            wp_enqueue_script( 'courier-live', get_template_directory_uri() . '/js/live.js', [], '4.2.1', true );
            wp_localize_script( 'courier-live', 'CourierLive', [
                'ajaxUrl' => admin_url( 'admin-ajax.php' ),
                'nonce'   => wp_create_nonce( 'courier_live' ),
            ] );
        } );
        // Rendered output, for reference (from view-source on staging):
        // var CourierLive = {"ajaxUrl":"https:\\/\\/staging.harwickcourier.co.uk\\/wp-admin\\/admin-ajax.php","nonce":"{V}"};
        """,
    ),
    _t(
        "sites/staging/.htpasswd",
        "t17_apr1",
        False,
        """
        bluewire:{V}
        nmgreview:{V2}
        fathomfold:{V3}
        """,
    ),
    _t(
        "sites/lakeside-gazette/wp-content/plugins/nmg-newsletter/readme.txt",
        "t17_ph",
        False,
        """
        === NMG Newsletter Signup ===
        Contributors: bluewiredigital
        Requires at least: 5.8
        Tested up to: 6.4
        Stable tag: 2.3.0

        == Installation ==

        1. Upload the plugin and activate it.
        2. Go to Settings > Newsletter and paste the Mailchimp API key, e.g. `{V}`.
        3. Choose the audience (list) the form subscribes people to.
        """,
    ),
    _t(
        "sites/lakeside-gazette/wp-content/plugins/nmg-newsletter/includes/class-settings.php",
        "t17_text",
        False,
        """
        <?php
        class NMG_Newsletter_Settings {
            public function render_api_key_field() {
                $value = get_option( 'nmg_newsletter_api_key', '' );
                printf(
                    '<input type="password" name="nmg_newsletter_api_key" value="%s" class="regular-text" autocomplete="off" />',
                    esc_attr( $value )
                );
                echo '<p class="description">' . esc_html__( '{V}', 'nmg-newsletter' ) . '</p>';
            }
        }
        """,
    ),
    # ---------------------------------------------------------------- Drupal
    _t(
        "sites/nmg-corporate/web/sites/default/settings.php",
        "t17_pw",
        True,
        """
        <?php
        $databases['default']['default'] = [
          'database' => 'nmg_corporate',
          'username' => 'drupal',
          'password' => '{V}',
          'prefix' => '',
          'host' => 'mysql-prod-02.nmg-media.net',
          'port' => '3306',
          'namespace' => 'Drupal\\\\Core\\\\Database\\\\Driver\\\\mysql',
          'driver' => 'mysql',
        ];
        $settings['config_sync_directory'] = '../config/sync';
        $settings['trusted_host_patterns'] = ['^www\\.nmg-media\\.com$'];
        """,
    ),
    _t(
        "sites/nmg-corporate/web/sites/default/settings.prod.php",
        "t17_drupal_salt",
        True,
        """
        <?php
        /**
         * Salt for one-time login links, cancel links, form tokens, etc.
         */
        $settings['hash_salt'] = '{V}';
        $settings['update_free_access'] = FALSE;
        $settings['file_private_path'] = '/var/www/private';
        """,
    ),
    _t(
        "sites/lakeside-archive/web/sites/default/settings.php",
        "t17_ref_php",
        False,
        """
        <?php
        $databases['default']['default'] = [
          'database' => getenv('DRUPAL_DB_NAME'),
          'username' => getenv('DRUPAL_DB_USER'),
          'password' => {V},
          'host' => getenv('DRUPAL_DB_HOST'),
          'driver' => 'mysql',
        ];
        $settings['hash_salt'] = file_get_contents('/var/www/private/salt.txt');
        """,
    ),
    _t(
        "sites/lakeside-archive/legacy-d7/users_export.csv",
        "t17_drupal7",
        False,
        """
        uid,name,pass,mail,status,created
        1,admin,{V},web@lakesidegazette.com,1,1302523911
        7,archivist,{V2},archive@lakesidegazette.com,1,1331042210
        19,picturedesk,{V3},pictures@lakesidegazette.com,0,1389811004
        """,
    ),
    _t(
        "sites/nmg-corporate/config/sync/recaptcha.settings.yml",
        "t17_recaptcha_site",
        False,
        """
        site_key: {V}
        secret_key: ''
        verify_hostname: false
        use_globally: false
        widget:
          theme: light
          type: image
        # secret_key is injected from settings.prod.php via $config overrides
        """,
    ),
    # ---------------------------------------------------------------- Joomla
    _t(
        "sites/pulse-events/configuration.php",
        "t17_pw",
        True,
        """
        <?php
        class JConfig {
            public $offline = '0';
            public $sitename = 'Pulse Events';
            public $dbtype = 'mysqli';
            public $host = 'localhost';
            public $user = 'pulseev_j3';
            public $password = '{V}';
            public $db = 'pulseev_j3';
            public $dbprefix = 'pev_';
            public $mailer = 'smtp';
            public $smtpuser = 'events@pulseweekly.com';
            public $smtppass = '{V2}';
            public $smtphost = 'smtp.office365.com';
            public $smtpport = '587';
        }
        """,
    ),
    _t(
        "sites/pulse-events/sql/pev_users.sql",
        "t17_bcrypt",
        False,
        """
        INSERT INTO `pev_users` (`id`, `name`, `username`, `email`, `password`, `block`, `sendEmail`, `registerDate`) VALUES
        (511, 'Super User', 'pulseadmin', 'web@pulseweekly.com', '{V}', 0, 1, '2015-06-01 09:12:44'),
        (512, 'Events Desk', 'eventsdesk', 'events@pulseweekly.com', '{V2}', 0, 0, '2016-02-11 14:20:10');
        """,
    ),
    _t(
        "sites/pulse-events/installation/configuration.php-dist",
        "t17_ph",
        False,
        """
        <?php
        class JConfig {
            /* Database Settings */
            public $dbtype = 'mysqli';
            public $host = 'localhost';
            public $user = '';
            public $password = '{V}';
            public $db = '';
            public $dbprefix = 'jos_';
            /* Server Settings */
            public $secret = '{V2}';
        }
        """,
    ),
    # ---------------------------------------------------------------- Magento 2 (shop)
    _t(
        "shop/app/etc/env.php",
        "t17_hex32",
        True,
        """
        <?php
        return [
            'backend' => [
                'frontName' => 'nmg_shopadmin'
            ],
            'crypt' => [
                'key' => '{V}'
            ],
            'session' => [
                'save' => 'redis',
            ],
            'MAGE_MODE' => 'production',
            'x-frame-options' => 'SAMEORIGIN',
        ];
        """,
    ),
    _t(
        "shop/dumps/core_config_data_payment.sql",
        "t17_magento_enc",
        False,
        """
        -- payment settings copied from production for the staging refresh (values are encrypted with the prod crypt key)
        INSERT INTO `core_config_data` (`scope`, `scope_id`, `path`, `value`) VALUES
        ('default', 0, 'payment/braintree/merchant_id', 'nmgbooksuk'),
        ('default', 0, 'payment/braintree/private_key', '{V}'),
        ('default', 0, 'payment/braintree/public_key', '{V2}'),
        ('default', 0, 'carriers/dhl/password', '{V3}'),
        ('default', 0, 'payment/braintree/environment', 'production');
        """,
    ),
    _t(
        "shop/auth.json",
        "t17_token",
        True,
        """
        {
            "http-basic": {
                "satis.bluewire.agency": {
                    "username": "token",
                    "password": "{V}"
                }
            }
        }
        """,
    ),
    _t(
        "shop/auth.json.sample",
        "t17_ph",
        False,
        """
        {
            "http-basic": {
                "repo.magento.com": {
                    "username": "<public-key>",
                    "password": "{V}"
                }
            }
        }
        """,
    ),
    # ---------------------------------------------------------------- TYPO3
    _t(
        "sites/nmg-careers/typo3conf/LocalConfiguration.php",
        "t17_typo3_key",
        True,
        """
        <?php
        return [
            'BE' => [
                'debug' => false,
                'lockSSL' => true,
            ],
            'SYS' => [
                'encryptionKey' => '{V}',
                'sitename' => 'NMG Careers',
                'trustedHostsPattern' => 'careers\\\\.nmg-media\\\\.com',
            ],
        ];
        """,
    ),
    _t(
        "sites/nmg-careers/typo3conf/LocalConfiguration.install.php",
        "t17_argon2",
        False,
        """
        <?php
        return [
            'BE' => [
                'installToolPassword' => '{V}',
                'passwordHashing' => [
                    'className' => 'TYPO3\\\\CMS\\\\Core\\\\Crypto\\\\PasswordHashing\\\\Argon2iPasswordHash',
                    'options' => [],
                ],
            ],
        ];
        """,
    ),
    _t(
        "sites/nmg-careers/typo3conf/AdditionalConfiguration.php",
        "t17_ref_php",
        False,
        """
        <?php
        $GLOBALS['TYPO3_CONF_VARS']['DB']['Connections']['Default'] = array_merge(
            $GLOBALS['TYPO3_CONF_VARS']['DB']['Connections']['Default'],
            [
                'host' => getenv('TYPO3_DB_HOST'),
                'user' => getenv('TYPO3_DB_USER'),
                'password' => {V},
                'dbname' => getenv('TYPO3_DB_NAME'),
            ]
        );
        """,
    ),
    # ---------------------------------------------------------------- Ghost
    _t(
        "sites/pulse-longreads/config.production.json",
        "t17_pw",
        True,
        """
        {
          "url": "https://longreads.pulseweekly.com",
          "server": { "port": 2368, "host": "127.0.0.1" },
          "database": {
            "client": "mysql",
            "connection": {
              "host": "localhost",
              "user": "ghost-longreads",
              "password": "{V}",
              "database": "ghost_longreads"
            }
          },
          "mail": {
            "transport": "SMTP",
            "options": {
              "service": "Mailgun",
              "auth": { "user": "postmaster@mg.pulseweekly.com", "pass": "{V2}" }
            }
          },
          "process": "systemd"
        }
        """,
    ),
    _t(
        "sites/pulse-longreads/scripts/import_from_wp.js",
        "t17_ghost_admin",
        True,
        """
        // one-off: copy the 2014-2019 long reads from WordPress into Ghost
        const GhostAdminAPI = require('@tryghost/admin-api');

        const api = new GhostAdminAPI({
          url: 'https://longreads.pulseweekly.com',
          key: '{V}',
          version: 'v5.0',
        });

        async function importPost(post) {
          return api.posts.add({ title: post.title, html: post.html }, { source: 'html' });
        }

        module.exports = { importPost };
        """,
    ),
    _t(
        "sites/pulse-longreads/theme/assets/js/search.js",
        "t17_ghost_content",
        False,
        """
        // Content API keys are public by design (read-only, published content only)
        const api = new GhostContentAPI({
          url: 'https://longreads.pulseweekly.com',
          key: '{V}',
          version: 'v5.0',
        });

        export function searchPosts(term) {
          return api.posts.browse({ filter: `title:~'${term}'`, limit: 10 });
        }
        """,
    ),
    _t(
        "sites/pulse-longreads/docker-compose.yml",
        "t17_ref_compose",
        False,
        """
        services:
          ghost:
            image: ghost:5-alpine
            restart: always
            environment:
              url: https://longreads.pulseweekly.com
              database__client: mysql
              database__connection__host: db
              database__connection__user: ghost
              database__connection__password: {V}
              mail__options__auth__pass: {V2}
          db:
            image: mysql:8.0
            environment:
              MYSQL_ROOT_PASSWORD_FILE: /run/secrets/mysql_root
        """,
    ),
    # ---------------------------------------------------------------- Perl / ColdFusion / ASP
    _t(
        "legacy/cgi-bin/classifieds/lib/NMG/DB.pm",
        "t17_pw",
        True,
        """
        package NMG::DB;
        use strict;
        use warnings;
        use DBI;

        # classifieds database (Courier print ads), still used by the Friday supplement export
        sub connect {
            my $dbh = DBI->connect(
                "DBI:mysql:database=classifieds;host=legacy-db.nmg-media.net",
                "classads", "{V}",
                { RaiseError => 1, AutoCommit => 1 }
            ) or die $DBI::errstr;
            return $dbh;
        }
        1;
        """,
    ),
    _t(
        "legacy/cgi-bin/classifieds/config.pl",
        "t17_ph",
        False,
        """
        # Copy to config.local.pl and fill in; config.local.pl is not in version control
        our %CONFIG = (
            db_host => 'legacy-db.nmg-media.net',
            db_name => 'classifieds',
            db_user => 'classads',
            db_pass => '{V}',
            upload_dir => '/var/www/classifieds/uploads',
        );
        1;
        """,
    ),
    _t(
        "legacy/cgi-bin/members/.htpasswd",
        "t17_descrypt",
        False,
        """
        editor:{V}
        subs:{V2}
        """,
    ),
    _t(
        "legacy/coldfusion/events/Application.cfc",
        "t17_pw",
        True,
        """
        component {
            this.name = "GazetteEvents";
            this.sessionManagement = true;
            this.datasources["gazette_events"] = {
                class: "com.microsoft.sqlserver.jdbc.SQLServerDriver",
                connectionString: "jdbc:sqlserver://sql-legacy01:1433;databaseName=GazetteEvents",
                username: "cf_events",
                password: "{V}"
            };
            this.datasource = "gazette_events";
        }
        """,
    ),
    _t(
        "legacy/coldfusion/lib/neo-datasource.xml",
        "t17_cf_enc",
        False,
        """
        <wddxPacket version='1.0'><header/><data><array length='1'><struct type='coldfusion.server.ConfigMap'>
        <var name='gazette_events'><struct type='coldfusion.server.ConfigMap'>
        <var name='username'><string>cf_events</string></var>
        <var name='password'><string>{V}</string></var>
        <var name='url'><string>jdbc:macromedia:sqlserver://sql-legacy01:1433;databaseName=GazetteEvents</string></var>
        <var name='driver'><string>MSSQLServer</string></var>
        </struct></var>
        </struct></array></data></wddxPacket>
        """,
    ),
    _t(
        "legacy/coldfusion/lib/password.properties",
        "t17_cf_hash",
        False,
        """
        #Thu Jun 03 11:42:17 BST 2021
        rdspassword={V}
        password={V2}
        encrypted=true
        """,
    ),
    _t(
        "legacy/asp/classifieds/includes/conn.asp",
        "t17_pw",
        True,
        """
        <%
        ' Classifieds connection (do not change without telling the print production team)
        Dim objConn
        Set objConn = Server.CreateObject("ADODB.Connection")
        objConn.Open "Provider=SQLOLEDB;Data Source=SQL-LEGACY01;Initial Catalog=Classifieds;User ID=sa;Password={V};"
        %>
        """,
    ),
    _t(
        "legacy/asp/letters/global.asa",
        "t17_weak",
        True,
        """
        <SCRIPT LANGUAGE="VBScript" RUNAT="Server">
        Sub Application_OnStart
            Application("ConnStr") = "Driver={SQL Server};Server=SQL-LEGACY01;Database=Letters;Uid=letters_web;Pwd={V};"
            Application("AdminUser") = "lettersed"
            Application("AdminPass") = "{V2}"
        End Sub
        </SCRIPT>
        """,
    ),
    _t(
        "legacy/asp/letters/admin/login.asp",
        "t17_md5",
        False,
        """
        <!--#include file="../includes/md5.asp"-->
        <%
        ' Editors' login for the letters page. Hashes were generated with md5.asp on the old server.
        Dim users
        Set users = Server.CreateObject("Scripting.Dictionary")
        users.Add "lettersed", "{V}"
        users.Add "nightdesk", "{V2}"
        If users.Exists(Request.Form("user")) And users(Request.Form("user")) = MD5(Request.Form("pass")) Then
            Session("letters_admin") = True
            Response.Redirect "moderate.asp"
        End If
        %>
        """,
    ),
    _t(
        "legacy/README-legacy.txt",
        "t17_example",
        False,
        """
        LEGACY SERVERS - NOTES FOR NEW DEVELOPERS
        =========================================

        The Perl and ASP apps only run on the old Windows/Linux pair. To try the Perl
        classifieds code locally, start the bundled MySQL container and use the demo account:

            mysql -h db.example.com -u demo -p{V} classifieds_demo

        Real credentials are never written down here: ask the platform team.
        """,
    ),
    # ---------------------------------------------------------------- Newsroom: Node / Express
    _t(
        "newsroom/liveblog/config/default.js",
        "t17_ref_js",
        False,
        """
        module.exports = {
          port: Number(process.env.PORT || 3000),
          session: {
            name: 'lb.sid',
            secret: {V},
            cookie: { secure: true, maxAge: 8 * 60 * 60 * 1000 },
          },
          db: {
            host: process.env.DB_HOST,
            user: process.env.DB_USER,
            password: {V2},
          },
        };
        """,
    ),
    _t(
        "newsroom/liveblog/src/app.js",
        "t17_signing",
        True,
        """
        const express = require('express');
        const session = require('express-session');
        const RedisStore = require('connect-redis').default;

        const app = express();
        app.set('trust proxy', 1);
        app.use(session({
          store: new RedisStore({ client: redisClient }),
          secret: '{V}',
          resave: false,
          saveUninitialized: false,
          cookie: { secure: true, sameSite: 'lax' },
        }));
        """,
    ),
    _t(
        "newsroom/liveblog/test/auth.test.js",
        "t17_fake",
        False,
        """
        const request = require('supertest');
        const { createApp } = require('../src/app');

        describe('POST /api/login', () => {
          const app = createApp({ sessionSecret: '{V}', jwtSecret: '{V2}' });

          it('rejects a bad password', async () => {
            const res = await request(app).post('/api/login').send({ email: 'reporter@example.com', password: 'wrong' });
            expect(res.status).toBe(401);
          });
        });
        """,
    ),
    _t(
        "newsroom/liveblog/.npmrc",
        "t17_npm",
        True,
        """
        @nmg:registry=https://registry.npmjs.org/
        //registry.npmjs.org/:_authToken={V}
        save-exact=true
        """,
    ),
    _t(
        "newsroom/wire-ingest/.npmrc",
        "t17_ref_npm",
        False,
        """
        @bluewire:registry=https://npm.pkg.github.com
        //npm.pkg.github.com/:_authToken={V}
        engine-strict=true
        """,
    ),
    # ---------------------------------------------------------------- Newsroom: Rails
    _t(
        "newsroom/desk-planner/config/master.key",
        "t17_hex32",
        True,
        """
        {V}
        """,
    ),
    _t(
        "newsroom/desk-planner/config/credentials.yml.enc",
        "t17_rails_enc",
        False,
        """
        {V}
        """,
    ),
    _t(
        "newsroom/desk-planner/config/database.yml",
        "t17_pw",
        True,
        """
        default: &default
          adapter: postgresql
          encoding: unicode
          pool: <%= ENV.fetch("RAILS_MAX_THREADS") { 5 } %>

        development:
          <<: *default
          database: desk_planner_development

        production:
          <<: *default
          host: pg-newsroom.nmg-media.net
          database: desk_planner
          username: desk_planner
          password: {V}
        """,
    ),
    _t(
        "newsroom/picture-desk/config/database.yml",
        "t17_ref_rb",
        False,
        """
        production:
          adapter: mysql2
          host: <%= ENV['PICTURE_DB_HOST'] %>
          database: picture_desk
          username: picture_desk
          password: <%= {V} %>
        """,
    ),
    _t(
        "newsroom/picture-desk/config/secrets.yml",
        "t17_rails_skb",
        True,
        """
        # Be sure to restart your server when you modify this file.
        development:
          secret_key_base: {V}

        test:
          secret_key_base: {V2}

        production:
          secret_key_base: {V3}
        """,
    ),
    _t(
        "newsroom/desk-planner/config/secrets.yml",
        "t17_ref_rb",
        False,
        """
        production:
          secret_key_base: <%= {V} %>
          smtp_password: <%= {V2} %>
        """,
    ),
    _t(
        "newsroom/desk-planner/test/fixtures/users.yml",
        "t17_bcrypt",
        False,
        """
        night_editor:
          email: night.editor@example.com
          name: Night Editor
          encrypted_password: "{V}"
          role: editor

        sub:
          email: sub@example.com
          name: Chief Sub
          encrypted_password: "{V2}"
          role: sub
        """,
    ),
    # ---------------------------------------------------------------- Newsroom: Django
    _t(
        "newsroom/archive-search/archive/settings/production.py",
        "t17_django_key",
        True,
        """
        from .base import *  # noqa

        DEBUG = False
        SECRET_KEY = "{V}"
        ALLOWED_HOSTS = ["archive.harwickcourier.co.uk", "archive-search.nmg-media.net"]
        CSRF_TRUSTED_ORIGINS = ["https://archive.harwickcourier.co.uk"]
        SESSION_COOKIE_SECURE = True
        """,
    ),
    _t(
        "newsroom/archive-search/archive/settings/base.py",
        "t17_ref_py",
        False,
        """
        import os
        from pathlib import Path

        BASE_DIR = Path(__file__).resolve().parent.parent.parent
        SECRET_KEY = {V}
        DATABASES = {
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": "archive",
                "USER": "archive",
                "PASSWORD": {V2},
                "HOST": os.getenv("DB_HOST", "localhost"),
            }
        }
        """,
    ),
    _t(
        "newsroom/archive-search/fixtures/staff_users.json",
        "t17_pbkdf2",
        False,
        """
        [
          {
            "model": "auth.user",
            "pk": 1,
            "fields": {
              "username": "archivist",
              "password": "{V}",
              "is_staff": true,
              "is_superuser": true
            }
          },
          {
            "model": "auth.user",
            "pk": 2,
            "fields": { "username": "librarian", "password": "{V2}", "is_staff": true }
          }
        ]
        """,
    ),
    _t(
        "newsroom/archive-search/archive/settings/test.py",
        "t17_fake",
        False,
        """
        from .base import *  # noqa

        SECRET_KEY = "{V}"
        PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
        EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
        SENDGRID_API_KEY = "{V2}"
        """,
    ),
    _t(
        "newsroom/archive-search/archive/templates/registration/password_change_form.html",
        "t17_text",
        False,
        """
        {% extends "base.html" %}
        {% block content %}
        <h1>{% translate "Change password" %}</h1>
        <p class="help">{V}</p>
        <form method="post">{% csrf_token %}
          {{ form.old_password }}
          {{ form.new_password1 }}
          {{ form.new_password2 }}
          <button type="submit">{% translate "Save" %}</button>
        </form>
        {% endblock %}
        """,
    ),
    # ---------------------------------------------------------------- Ad-tech and analytics
    _t(
        "adtech/prebid/courier-prebid-config.js",
        "t17_bidder_id",
        False,
        """
        var adUnits = [{
          code: 'div-gpt-ad-mpu-1',
          mediaTypes: { banner: { sizes: [[300, 250], [300, 600]] } },
          bids: [
            { bidder: 'appnexus', params: { placementId: {V} } },
            { bidder: 'rubicon', params: { accountId: '{V2}', siteId: '{V3}', zoneId: '1843922' } },
            { bidder: 'ix', params: { siteId: '{V4}' } }
          ]
        }];
        pbjs.que.push(function () {
          pbjs.setConfig({ priceGranularity: 'dense', userSync: { iframeEnabled: true } });
          pbjs.addAdUnits(adUnits);
        });
        """,
    ),
    _t(
        "adtech/gtm/head-snippet.html",
        "t17_ga_id",
        False,
        """
        <!-- Google Tag Manager -->
        <script>(function(w,d,s,l,i){w[l]=w[l]||[];w[l].push({'gtm.start':
        new Date().getTime(),event:'gtm.js'});var f=d.getElementsByTagName(s)[0],
        j=d.createElement(s),dl=l!='dataLayer'?'&l='+l:'';j.async=true;j.src=
        'https://www.googletagmanager.com/gtm.js?id='+i+dl;f.parentNode.insertBefore(j,f);
        })(window,document,'script','dataLayer','{V}');</script>
        <!-- End Google Tag Manager -->
        <script async src="https://www.googletagmanager.com/gtag/js?id={V2}"></script>
        """,
    ),
    _t(
        "adtech/server-events/ga4_mp.py",
        "t17_ga_secret",
        True,
        """
        \"\"\"Send paywall conversions to GA4 via the Measurement Protocol.\"\"\"
        import requests

        MEASUREMENT_ID = "G-7QH2K4R1ZD"
        API_SECRET = "{V}"

        def send_subscribe(client_id: str, plan: str, value: float) -> None:
            requests.post(
                "https://www.google-analytics.com/mp/collect",
                params={"measurement_id": MEASUREMENT_ID, "api_secret": API_SECRET},
                json={"client_id": client_id, "events": [{"name": "purchase", "params": {"plan": plan, "value": value, "currency": "GBP"}}]},
                timeout=5,
            )
        """,
    ),
    _t(
        "adtech/server-events/meta_capi.php",
        "t17_fb_token",
        True,
        """
        <?php
        // Meta Conversions API for subscription events (Pulse Weekly pixel)
        const PIXEL_ID = '2984410036651207';
        const CAPI_TOKEN = '{V}';

        function nmg_capi_send(array $event): void {
            $url = 'https://graph.facebook.com/v18.0/' . PIXEL_ID . '/events?access_token=' . CAPI_TOKEN;
            wp_remote_post($url, ['body' => ['data' => json_encode([$event])], 'timeout' => 5]);
        }
        """,
    ),
    _t(
        "adtech/social/head-meta.html",
        "t17_fb_app_id",
        False,
        """
        <meta property="fb:app_id" content="{V}" />
        <meta property="fb:pages" content="{V2}" />
        <meta property="og:site_name" content="The Harwick Courier" />
        <meta name="twitter:site" content="@HarwickCourier" />
        """,
    ),
    _t(
        "adtech/analytics/parsely-tracker.html",
        "t17_player_id",
        False,
        """
        <!-- Parse.ly tracker: the "apikey" is the site id, public by design -->
        <script id="parsely-cfg" src="//cdn.parsely.com/keys/lakesidegazette.com/p.js" data-parsely-site="lakesidegazette.com"></script>
        <script>
          window.PARSELY = window.PARSELY || { autotrack: false, onReady: function () { PARSELY.beacon.trackPageView({ urlref: document.referrer, js: 1, data: { build: '{V}' } }); } };
        </script>
        """,
    ),
    _t(
        "adtech/gam/service_account.json",
        "t17_gcp_key",
        True,
        """
        {
          "type": "service_account",
          "project_id": "nmg-ad-reporting",
          "private_key": "{V}",
          "client_email": "gam-reports@nmg-ad-reporting.iam.gserviceaccount.com",
          "client_id": "104719328847610293847",
          "auth_uri": "https://accounts.google.com/o/oauth2/auth",
          "token_uri": "https://oauth2.googleapis.com/token"
        }
        """,
    ),
    _t(
        "adtech/gam/googleads.yaml",
        "t17_path",
        False,
        """
        ad_manager:
          application_name: NMG Revenue Reports
          network_code: 21734589
          path_to_private_key_file: {V}
          delegated_account: revenue-ops@nmg-media.net
        """,
    ),
    _t(
        "sites/harwick-courier/public/ads.txt",
        "t17_tag_id",
        False,
        """
        # ads.txt for harwickcourier.co.uk - updated 2024-02 by the NMG revenue team
        google.com, pub-4791837204817263, DIRECT, {V}
        appnexus.com, 9876, RESELLER, {V2}
        rubiconproject.com, 19114, DIRECT, {V3}
        indexexchange.com, 185437, DIRECT, {V4}
        """,
    ),
    _t(
        "adtech/analytics/comscore.html",
        "t17_bidder_id",
        False,
        """
        <!-- Begin comScore Tag -->
        <script>
          var _comscore = _comscore || [];
          _comscore.push({ c1: "2", c2: "{V}", options: { enableFirstPartyCookie: true } });
          (function () { var s = document.createElement("script"); s.async = true; s.src = "https://sb.scorecardresearch.com/cs/{V}/beacon.js"; document.head.appendChild(s); })();
        </script>
        <!-- End comScore Tag -->
        """,
    ),
    _t(
        "adtech/adobe/appmeasurement-config.js",
        "t17_uuid",
        False,
        """
        s.account = "nmgcourierprod";
        s.trackingServer = "metrics.harwickcourier.co.uk";
        s.visitor = Visitor.getInstance("{V}@AdobeOrg");
        s.eVar12 = "paywall-" + window.nmgPaywallState;
        s.linkInternalFilters = "javascript:,harwickcourier.co.uk";
        """,
    ),
    _t(
        "adtech/analytics/sentry-init.js",
        "t17_sentry_dsn",
        False,
        """
        import * as Sentry from '@sentry/browser';

        // browser DSN: public by design, rate limited on the Sentry side
        Sentry.init({
          dsn: '{V}',
          release: window.__NMG_RELEASE__,
          tracesSampleRate: 0.05,
          allowUrls: [/harwickcourier\\.co\\.uk/],
        });
        """,
    ),
    _t(
        "adtech/recaptcha/comments-form.html",
        "t17_recaptcha_site",
        False,
        """
        <form id="comment-form" action="/comments/submit" method="post">
          <textarea name="comment" rows="5" required></textarea>
          <div class="g-recaptcha" data-sitekey="{V}"></div>
          <button type="submit">Post comment</button>
        </form>
        <script src="https://www.google.com/recaptcha/api.js" async defer></script>
        """,
    ),
    _t(
        "adtech/recaptcha/verify.php",
        "t17_recaptcha_secret",
        True,
        """
        <?php
        function nmg_verify_recaptcha(string $response): bool {
            $secret = '{V}';
            $result = wp_remote_post('https://www.google.com/recaptcha/api/siteverify', [
                'body' => ['secret' => $secret, 'response' => $response, 'remoteip' => $_SERVER['REMOTE_ADDR']],
            ]);
            $body = json_decode(wp_remote_retrieve_body($result), true);
            return !empty($body['success']);
        }
        """,
    ),
    _t(
        "adtech/recaptcha/tests/VerifyTest.php",
        "t17_recaptcha_test",
        False,
        """
        <?php
        use PHPUnit\\Framework\\TestCase;

        // Google's published test keys: every verification passes, never use in production
        final class VerifyTest extends TestCase {
            private const TEST_SECRET = '{V}';

            public function testAlwaysPasses(): void {
                $this->assertTrue(nmg_verify_recaptcha_with(self::TEST_SECRET, 'anything'));
            }
        }
        """,
    ),
    _t(
        "adtech/search/algolia-frontend.js",
        "t17_algolia_search",
        False,
        """
        import algoliasearch from 'algoliasearch/lite';

        // search-only key, restricted to the courier_articles index
        const searchClient = algoliasearch('H4KQ2Z8PLM', '{V}');
        export const index = searchClient.initIndex('courier_articles');
        """,
    ),
    _t(
        "adtech/search/algolia_reindex.py",
        "t17_hex32",
        True,
        """
        from algoliasearch.search_client import SearchClient

        APP_ID = "H4KQ2Z8PLM"
        ADMIN_KEY = "{V}"

        def reindex(articles):
            client = SearchClient.create(APP_ID, ADMIN_KEY)
            index = client.init_index("courier_articles")
            index.replace_all_objects(articles, {"batchSize": 1000})
        """,
    ),
    # ---------------------------------------------------------------- Video and streaming
    _t(
        "video/live/push_to_youtube.sh",
        "t17_stream_key",
        True,
        """
        #!/usr/bin/env bash
        # Relay the studio feed (Wowza origin) to the Courier YouTube channel for the council count
        set -euo pipefail
        SRC="rtmp://wowza-origin.nmg-media.net:1935/live/studio1"
        YT_KEY="{V}"
        ffmpeg -hide_banner -i "$SRC" \\
          -c:v copy -c:a aac -b:a 128k -ar 44100 \\
          -f flv "rtmp://a.rtmp.youtube.com/live2/${YT_KEY}"
        """,
    ),
    _t(
        "video/live/nginx-rtmp.conf",
        "t17_stream_key",
        True,
        """
        rtmp {
            server {
                listen 1935;
                chunk_size 4096;
                application live {
                    live on;
                    record off;
                    allow publish 10.30.0.0/16;
                    deny publish all;
                    push rtmp://a.rtmp.youtube.com/live2/{V};
                    push rtmps://live-api-s.facebook.com:443/rtmp/{V2};
                }
            }
        }
        """,
    ),
    _t(
        "video/live/transcode.sh",
        "t17_ref_sh",
        False,
        """
        #!/bin/sh
        # called by nginx-rtmp: exec_push /opt/nmg/bin/transcode.sh $name;
        NAME="$1"
        UPLOAD_KEY={V}
        exec ffmpeg -hide_banner -i "rtmp://127.0.0.1/ingest/$NAME" \\
          -c:v libx264 -preset veryfast -b:v 3000k -c:a aac -b:a 128k \\
          -f flv "rtmp://wowza-origin.nmg-media.net/live/$NAME?key=$UPLOAD_KEY"
        """,
    ),
    _t(
        "video/wowza/conf/publish.password",
        "t17_pw",
        True,
        """
        # Publish password file (format [username][space][password])
        # username password
        studio1 {V}
        ob-van {V2}
        """,
    ),
    _t(
        "video/wowza/conf/admin.password.hashed",
        "t17_bcrypt",
        False,
        """
        # Admin password file (format [username][space][password][space][group][space][passwordEncoding])
        # username password group|group passwordEncoding
        wowza {V} admin|advUser bcrypt
        videodesk {V2} admin bcrypt
        """,
    ),
    _t(
        "video/transcode/ffmpeg_hls.sh",
        "t17_asset_hash",
        False,
        """
        #!/bin/sh
        # Build the HLS ladder for one clip; the output folder is named after the content hash
        IN="$1"
        HASH="{V}"
        OUT="/srv/vod/$HASH"
        mkdir -p "$OUT"
        ffmpeg -i "$IN" -filter_complex "[0:v]split=3[v1][v2][v3]" \\
          -map "[v1]" -c:v:0 libx264 -b:v:0 5000k -map "[v2]" -c:v:1 libx264 -b:v:1 2800k \\
          -map "[v3]" -c:v:2 libx264 -b:v:2 1200k -map a:0 -map a:0 -map a:0 -c:a aac \\
          -f hls -hls_time 6 -hls_playlist_type vod -master_pl_name master.m3u8 \\
          -var_stream_map "v:0,a:0 v:1,a:1 v:2,a:2" "$OUT/stream_%v.m3u8"
        """,
    ),
    _t(
        "video/upload/s3_upload.py",
        "t17_aws_args",
        True,
        """
        import boto3

        # upload finished clips to the VOD bucket; CloudFront serves them from there
        s3 = boto3.client("s3", region_name="eu-west-2", {V})

        def upload(path: str, key: str) -> None:
            s3.upload_file(path, "nmg-vod-origin", key, ExtraArgs={"ContentType": "video/mp4", "CacheControl": "max-age=31536000"})
        """,
    ),
    _t(
        "video/upload/.s3cfg",
        "t17_aws_ini",
        True,
        """
        [default]
        {V}
        bucket_location = eu-west-2
        host_base = s3.amazonaws.com
        host_bucket = %(bucket)s.s3.amazonaws.com
        use_https = True
        """,
    ),
    _t(
        "video/upload/invalidate.sh",
        "t17_cf_dist",
        False,
        """
        #!/bin/sh
        # clear the CDN after re-encoding a clip; credentials come from the instance role
        DIST_ID={V}
        aws cloudfront create-invalidation --distribution-id "$DIST_ID" --paths "/vod/$1/*"
        """,
    ),
    _t(
        "video/upload/logs/upload-2021-06-14.log",
        "t17_presigned",
        False,
        """
        2021-06-14 09:15:02 INFO  mediaconvert job 1623661502 submitted
        2021-06-14 09:15:02 DEBUG presigned source (expires in 900s): {V}
        2021-06-14 09:31:47 INFO  job COMPLETE, 3 renditions written
        """,
    ),
    _t(
        "video/mediaconvert/job-template.json",
        "t17_aws_account",
        False,
        """
        {
          "Role": "arn:aws:iam::{V}:role/nmg-mediaconvert",
          "Settings": {
            "Inputs": [{ "FileInput": "s3://nmg-video-masters/raw/" }],
            "OutputGroups": [{
              "Name": "File Group",
              "OutputGroupSettings": { "Type": "FILE_GROUP_SETTINGS", "FileGroupSettings": { "Destination": "s3://nmg-vod-origin/vod/" } }
            }]
          },
          "Queue": "arn:aws:mediaconvert:eu-west-2:{V}:queues/Default"
        }
        """,
    ),
    _t(
        "video/mux/.env",
        "t17_mux_secret",
        True,
        """
        MUX_TOKEN_ID=8a3c1f2e-6b0d-4d6f-9a43-1b2c3d4e5f60
        MUX_TOKEN_SECRET={V}
        MUX_WEBHOOK_PATH=/hooks/mux
        """,
    ),
    _t(
        "video/brightcove/oauth.py",
        "t17_brightcove",
        True,
        """
        import requests

        ACCOUNT_ID = "6031429588001"
        CLIENT_ID = "0f2b7c1e-4a9d-4c2f-8e11-5a6b7c8d9e0f"
        CLIENT_SECRET = "{V}"

        def token() -> str:
            r = requests.post("https://oauth.brightcove.com/v4/access_token",
                              auth=(CLIENT_ID, CLIENT_SECRET), data={"grant_type": "client_credentials"}, timeout=10)
            return r.json()["access_token"]
        """,
    ),
    _t(
        "video/brightcove/player-embed.html",
        "t17_player_id",
        False,
        """
        <video-js data-account="6031429588001"
                  data-player="{V}"
                  data-embed="default"
                  data-video-id="6342918273001"
                  controls class="vjs-fluid"></video-js>
        <script src="https://players.brightcove.net/6031429588001/{V}_default/index.min.js"></script>
        """,
    ),
    _t(
        "video/youtube/channel_stats.py",
        "t17_youtube_key",
        True,
        """
        from googleapiclient.discovery import build

        YOUTUBE_API_KEY = "{V}"
        CHANNEL_ID = "UC4xq0t7wQ8Jk2r9d1Vf3hZg"

        def latest_uploads(max_results: int = 10):
            yt = build("youtube", "v3", developerKey=YOUTUBE_API_KEY)
            return yt.search().list(part="snippet", channelId=CHANNEL_ID, order="date", maxResults=max_results).execute()
        """,
    ),
    _t(
        "video/youtube/embeds.json",
        "t17_youtube_id",
        False,
        """
        {
          "section": "news/local",
          "embeds": [
            { "title": "Council count live", "youtube_id": "{V}" },
            { "title": "Flood defences explained", "youtube_id": "{V2}" },
            { "title": "Harwick marathon highlights", "youtube_id": "{V3}" }
          ]
        }
        """,
    ),
    _t(
        "video/live/README.md",
        "t17_ph",
        False,
        """
        # Live streaming (studio 1 and the OB van)

        1. In OBS set **Server** to `rtmp://wowza-origin.nmg-media.net:1935/live`.
        2. Set **Stream key** to `{V}` (the video desk gives you the real one on the day).
        3. Check the feed on https://wowza-origin.nmg-media.net:8088/enginemanager before going public.
        """,
    ),
    _t(
        "video/transcode/docker-compose.yml",
        "t17_aws_yaml",
        True,
        """
        services:
          transcoder:
            image: nmg/transcoder:2.7.1
            environment:
              {IV}
              AWS_DEFAULT_REGION: eu-west-2
              OUTPUT_BUCKET: nmg-vod-origin
            volumes:
              - /srv/incoming:/incoming
        """,
    ),
    # ---------------------------------------------------------------- Newsletters
    _t(
        "newsletters/morning-briefing/send.py",
        "t17_mailchimp",
        True,
        """
        import mailchimp_marketing as MailchimpMarketing

        API_KEY = "{V}"
        client = MailchimpMarketing.Client()
        client.set_config({"api_key": API_KEY, "server": API_KEY.rsplit("-", 1)[1]})

        AUDIENCE_ID = "5f1c2a9e0b"

        def create_campaign(subject: str, html: str) -> str:
            campaign = client.campaigns.create({
                "type": "regular",
                "recipients": {"list_id": AUDIENCE_ID},
                "settings": {"subject_line": subject, "from_name": "The Harwick Courier", "reply_to": "newsletters@harwickcourier.co.uk"},
            })
            client.campaigns.set_content(campaign["id"], {"html": html})
            return campaign["id"]
        """,
    ),
    _t(
        "newsletters/morning-briefing/lists.yml",
        "t17_mc_list",
        False,
        """
        # Mailchimp audiences (list ids are not secret; the API key lives in the newsletter vault)
        audiences:
          morning_briefing: {V}
          sport_daily: {V2}
          pulse_whats_on: {V3}
        server_prefix: us14
        """,
    ),
    _t(
        "newsletters/transactional/.env",
        "t17_sendgrid",
        True,
        """
        SENDGRID_API_KEY={V}
        MAIL_FROM=subscriptions@harwickcourier.co.uk
        MAIL_FROM_NAME="The Harwick Courier"
        """,
    ),
    _t(
        "newsletters/transactional/templates.json",
        "t17_sg_template",
        False,
        """
        {
          "welcome_subscriber": "{V}",
          "payment_failed": "{V2}",
          "password_reset": "{V3}",
          "gift_subscription": "{V4}"
        }
        """,
    ),
    _t(
        "newsletters/transactional/src/mailer.ts",
        "t17_ref_js",
        False,
        """
        import sgMail from '@sendgrid/mail';
        import templates from '../templates.json';

        sgMail.setApiKey({V});

        export async function sendPasswordReset(to: string, link: string): Promise<void> {
          await sgMail.send({ to, from: 'subscriptions@harwickcourier.co.uk', templateId: templates.password_reset, dynamicTemplateData: { link } });
        }
        """,
    ),
    _t(
        "infra/mail/postfix/sasl_passwd",
        "t17_pw",
        True,
        """
        # postmap /etc/postfix/sasl_passwd after editing
        [smtp.sendgrid.net]:587 apikey:{V}
        [smtp.office365.com]:587 relay@nmg-media.net:{V2}
        """,
    ),
    _t(
        "legacy/newsletter-php/send_digest.php",
        "t17_pw",
        True,
        """
        <?php
        use PHPMailer\\PHPMailer\\PHPMailer;

        $mail = new PHPMailer(true);
        $mail->isSMTP();
        $mail->Host       = 'smtp.nmg-media.net';
        $mail->SMTPAuth   = true;
        $mail->Username   = 'digest@lakesidegazette.com';
        $mail->Password   = '{V}';
        $mail->SMTPSecure = PHPMailer::ENCRYPTION_STARTTLS;
        $mail->Port       = 587;
        $mail->setFrom('digest@lakesidegazette.com', 'Lakeside Gazette');
        """,
    ),
    _t(
        "infra/mail/msmtprc.wowza",
        "t17_ref_sh",
        False,
        """
        account        nmg
        host           smtp.nmg-media.net
        port           587
        from           wowza@nmg-media.net
        user           wowza@nmg-media.net
        passwordeval   echo {V}
        account default : nmg
        """,
    ),
    _t(
        "newsletters/mailgun/bounce_sync.rb",
        "t17_mailgun",
        True,
        """
        require "mailgun-ruby"

        mg = Mailgun::Client.new("{V}", "api.eu.mailgun.net")
        domain = "mg.pulseweekly.com"

        mg.get("#{domain}/bounces", { limit: 300 }).to_h["items"].each do |bounce|
          Subscriber.where(email: bounce["address"]).update_all(bounced: true)
        end
        """,
    ),
    _t(
        "newsletters/docs/mailchimp-integration.md",
        "t17_ph",
        False,
        """
        ## Connecting a title to Mailchimp

        Create an API key under *Account > Extras > API keys* and store it in the vault.
        The morning briefing job reads it from `MAILCHIMP_API_KEY`:

        ```bash
        export MAILCHIMP_API_KEY={V}
        python send.py --dry-run
        ```
        """,
    ),
    _t(
        "newsletters/morning-briefing/tests/test_send.py",
        "t17_fake",
        False,
        """
        from unittest import mock

        import send


        @mock.patch.object(send.client, "campaigns")
        def test_create_campaign_uses_audience(campaigns):
            send.client.set_config({"api_key": "{V}", "server": "us0"})
            campaigns.create.return_value = {"id": "abc123"}
            assert send.create_campaign("Hello", "<p>hi</p>") == "abc123"
        """,
    ),
    # ---------------------------------------------------------------- Paywall and payments
    _t(
        "paywall/subscriptions-api/config/stripe.php",
        "t17_stripe",
        True,
        """
        <?php
        return [
            'secret' => '{V}',
            'currency' => 'gbp',
            'plans' => [
                'digital_monthly' => 'courier_digital_monthly',
                'digital_annual'  => 'courier_digital_annual',
            ],
        ];
        """,
    ),
    _t(
        "paywall/subscriptions-api/public/js/checkout.js",
        "t17_stripe_pk",
        False,
        """
        // publishable key: safe in the browser
        const stripe = Stripe('{V}');
        document.querySelector('#subscribe').addEventListener('click', async () => {
          const res = await fetch('/api/checkout-session', { method: 'POST' });
          const { id } = await res.json();
          await stripe.redirectToCheckout({ sessionId: id });
        });
        """,
    ),
    _t(
        "paywall/subscriptions-api/.env.production",
        "t17_whsec",
        True,
        """
        APP_ENV=production
        STRIPE_WEBHOOK_SECRET={V}
        STRIPE_API_VERSION=2023-10-16
        """,
    ),
    _t(
        "paywall/subscriptions-api/tests/fixtures/webhook_invoice_paid.http",
        "t17_stripe_sig",
        False,
        """
        POST /webhooks/stripe HTTP/1.1
        Host: localhost:8000
        Content-Type: application/json
        Stripe-Signature: {V}

        {"id":"evt_1NdQ9zKx9LqZc4T0","type":"invoice.paid","data":{"object":{"customer":"cus_OQ2mFv8s","amount_paid":799}}}
        """,
    ),
    _t(
        "paywall/braintree/gateway.rb",
        "t17_braintree",
        True,
        """
        # print + digital bundle checkout (shop.harwickcourier.co.uk)
        GATEWAY = Braintree::Gateway.new(
          environment: :production,
          merchant_id: "nmgbooksuk",
          public_key: ENV.fetch("BRAINTREE_PUBLIC_KEY"),
          private_key: "{V}",
        )
        """,
    ),
    _t(
        "paywall/paypal/paypal_client.py",
        "t17_paypal",
        True,
        """
        import os

        from paypalcheckoutsdk.core import LiveEnvironment, PayPalHttpClient

        # TODO(bluewire): move the secret to the vault before handover
        CLIENT_ID = os.environ["PAYPAL_CLIENT_ID"]
        CLIENT_SECRET = "{V}"

        client = PayPalHttpClient(LiveEnvironment(client_id=CLIENT_ID, client_secret=CLIENT_SECRET))
        """,
    ),
    _t(
        "paywall/piano/composer.js",
        "t17_piano_aid",
        False,
        """
        tp = window.tp || [];
        tp.push(["setAid", "{V}"]);
        tp.push(["setCxenseSiteId", "1134958266142398113"]);
        tp.push(["setEndpoint", "https://buy-eu.piano.io/api/v3"]);
        tp.push(["setUseTinypassAccounts", false]);
        tp.push(["setUsePianoIdUserProvider", true]);
        tp.push(["init", function () { tp.experience.init(); }]);
        """,
    ),
    _t(
        "paywall/piano/sync_entitlements.py",
        "t17_token",
        True,
        """
        import requests

        PIANO_AID = "Qm4bTz8aLs"
        PIANO_API_TOKEN = "{V}"

        def user_access(uid: str) -> list[dict]:
            r = requests.get("https://api-eu.piano.io/api/v3/publisher/user/access/list",
                             params={"aid": PIANO_AID, "api_token": PIANO_API_TOKEN, "uid": uid}, timeout=10)
            return r.json().get("accesses", [])
        """,
    ),
    _t(
        "paywall/metering/src/token.ts",
        "t17_signing",
        True,
        """
        import jwt from 'jsonwebtoken';

        // signs the meter cookie: { articlesRead, period, entitlement }
        const METER_SECRET = '{V}';

        export function signMeter(payload: object): string {
          return jwt.sign(payload, METER_SECRET, { algorithm: 'HS256', expiresIn: '31d' });
        }
        """,
    ),
    _t(
        "paywall/metering/src/config.ts",
        "t17_ref_js",
        False,
        """
        export const config = {
          meterSecret: {V},
          freeArticles: Number(process.env.FREE_ARTICLES ?? 5),
          cookieDomain: '.harwickcourier.co.uk',
        };
        """,
    ),
    _t(
        "paywall/metering/src/i18n/de.json",
        "t17_i18n",
        False,
        """
        {
          "paywall.title": "Weiterlesen mit Courier Digital",
          "paywall.login": "Anmelden",
          "paywall.password": "{V}",
          "paywall.subscribe": "Jetzt abonnieren"
        }
        """,
    ),
    _t(
        "paywall/metering/src/components/LoginPrompt.tsx",
        "t17_text",
        False,
        """
        export function LoginPrompt({ onSubmit }: { onSubmit: (e: string, p: string) => void }) {
          return (
            <form onSubmit={(ev) => { ev.preventDefault(); onSubmit(email, password); }}>
              <label htmlFor="password">Password</label>
              <input id="password" type="password" autoComplete="current-password" />
              <p className="hint">{V}</p>
            </form>
          );
        }
        """,
    ),
    _t(
        "paywall/subscriptions-api/config/services.php",
        "t17_ref_php",
        False,
        """
        <?php
        return [
            'stripe' => [
                'secret' => {V},
                'webhook_secret' => {V2},
            ],
            'piano' => [
                'aid' => env('PIANO_AID'),
            ],
        ];
        """,
    ),
    # ---------------------------------------------------------------- Mobile reader apps
    _t(
        "apps/courier-android/gradle.properties",
        "t17_pw",
        True,
        """
        org.gradle.jvmargs=-Xmx4g -Dfile.encoding=UTF-8
        android.useAndroidX=true
        android.enableJetifier=false
        RELEASE_STORE_FILE=../keystore/courier-release.jks
        RELEASE_STORE_PASSWORD={V}
        RELEASE_KEY_ALIAS=courier
        RELEASE_KEY_PASSWORD={V2}
        """,
    ),
    _t(
        "apps/courier-android/app/build.gradle",
        "t17_ref_gradle",
        False,
        """
        android {
            signingConfigs {
                release {
                    storeFile file(System.getenv("KEYSTORE_PATH") ?: "../keystore/courier-release.jks")
                    storePassword System.getenv("KEYSTORE_PASSWORD")
                    keyAlias "courier"
                    keyPassword {V}
                }
            }
            buildTypes {
                release { signingConfig signingConfigs.release; minifyEnabled true }
            }
        }
        """,
    ),
    _t(
        "apps/courier-ios/fastlane/Fastfile",
        "t17_ref_mobile",
        False,
        """
        default_platform(:ios)

        platform :ios do
          lane :beta do
            setup_ci
            match(type: "appstore", readonly: true, git_basic_authorization: {V})
            app_store_connect_api_key(key_id: ENV["ASC_KEY_ID"], issuer_id: ENV["ASC_ISSUER_ID"], key_content: {V2})
            build_app(scheme: "Courier")
            upload_to_testflight(skip_waiting_for_build_processing: true)
          end
        end
        """,
    ),
    _t(
        "apps/courier-ios/fastlane/AuthKey_7QX2M9KD4B.p8",
        "t17_p8",
        True,
        """
        {V}
        """,
    ),
    _t(
        "apps/courier-ios/fastlane/api_key.json",
        "t17_apple_team",
        False,
        """
        {
          "key_id": "{V}",
          "issuer_id": "69a6de7f-1c2b-47e3-e053-5b8c7c11a4d1",
          "key_filepath": "./fastlane/AuthKey.p8",
          "duration": 1200,
          "in_house": false
        }
        """,
    ),
    _t(
        "apps/courier-ios/Courier/Info.plist",
        "t17_fb_app_id",
        False,
        """
        <key>FacebookAppID</key>
        <string>{V}</string>
        <key>FacebookDisplayName</key>
        <string>The Harwick Courier</string>
        <key>CFBundleURLTypes</key>
        <array>
          <dict>
            <key>CFBundleURLSchemes</key>
            <array><string>fb{V}</string></array>
          </dict>
        </array>
        """,
    ),
    _t(
        "apps/courier-ios/Config/Release.xcconfig",
        "t17_uuid",
        False,
        """
        API_BASE_URL = https:/$()/api.harwickcourier.co.uk/app/v3
        ONESIGNAL_APP_ID = {V}
        PIANO_AID = Qm4bTz8aLs
        DEVELOPMENT_TEAM = 8KXQ3W2P9L
        """,
    ),
    _t(
        "apps/pulse-rn/src/push/sendBreaking.ts",
        "t17_onesignal_rest",
        True,
        """
        // Used by the newsroom "breaking news" button (server side, Next.js API route)
        const ONESIGNAL_APP_ID = process.env.ONESIGNAL_APP_ID;
        const ONESIGNAL_REST_KEY = '{V}';

        export async function sendBreaking(headline: string, url: string) {
          return fetch('https://onesignal.com/api/v1/notifications', {
            method: 'POST',
            headers: { 'Content-Type': 'application/json', Authorization: `Basic ${ONESIGNAL_REST_KEY}` },
            body: JSON.stringify({ app_id: ONESIGNAL_APP_ID, included_segments: ['Subscribed Users'], headings: { en: 'Breaking' }, contents: { en: headline }, url }),
          });
        }
        """,
    ),
    _t(
        "apps/pulse-rn/.env.example",
        "t17_ph",
        False,
        """
        API_BASE_URL=https://api.pulseweekly.com/app/v2
        ONESIGNAL_APP_ID=
        ONESIGNAL_REST_KEY={V}
        SENTRY_AUTH_TOKEN={V2}
        """,
    ),
    _t(
        "apps/courier-android/app/src/main/res/values-nb/strings.xml",
        "t17_i18n",
        False,
        """
        <?xml version="1.0" encoding="utf-8"?>
        <resources>
            <string name="login_title">Logg inn</string>
            <string name="forgot_password">{V}</string>
            <string name="subscribe_cta">Abonner</string>
        </resources>
        """,
    ),
    _t(
        "apps/courier-android/keystore/README.md",
        "t17_sha256",
        False,
        """
        # Release keystore

        The keystore itself is in the Bluewire vault, never in git. Upload-key certificate
        fingerprint registered with Google Play (for checking a build):

            SHA-256: {V}

        Passwords: ask the NMG mobile lead.
        """,
    ),
    _t(
        "apps/courier-ios/Courier/Services/APIClient.swift",
        "t17_token",
        True,
        """
        import Foundation

        enum APIConfig {
            static let baseURL = URL(string: "https://api.harwickcourier.co.uk/app/v3")!
            // app-to-API shared key, checked by the gateway (rotated in 4.12)
            static let appKey = "{V}"
        }

        final class APIClient {
            func request(_ path: String) -> URLRequest {
                var req = URLRequest(url: APIConfig.baseURL.appendingPathComponent(path))
                req.setValue(APIConfig.appKey, forHTTPHeaderField: "X-NMG-App-Key")
                return req
            }
        }
        """,
    ),
    # ---------------------------------------------------------------- Docker / Kubernetes / Helm
    _t(
        "platform/compose/analytics-stack.yml",
        "t17_ref_compose",
        False,
        """
        services:
          clickhouse:
            image: clickhouse/clickhouse-server:23.8
            environment:
              CLICKHOUSE_USER: analytics
              CLICKHOUSE_PASSWORD: {V}
          metabase:
            image: metabase/metabase:v0.48.0
            env_file: ./metabase.env
            environment:
              MB_DB_PASS: {V2}
        """,
    ),
    _t(
        "platform/k8s/newsroom/secret-wire-ingest.yaml",
        "t17_b64pw",
        True,
        """
        apiVersion: v1
        kind: Secret
        metadata:
          name: wire-ingest
          namespace: newsroom
        type: Opaque
        data:
          DB_PASSWORD: {V}
          RABBITMQ_PASSWORD: {V2}
        """,
    ),
    _t(
        "platform/k8s/paywall/sealedsecret-stripe.yaml",
        "t17_sealed",
        False,
        """
        apiVersion: bitnami.com/v1alpha1
        kind: SealedSecret
        metadata:
          name: paywall-stripe
          namespace: paywall
        spec:
          encryptedData:
            STRIPE_SECRET_KEY: {V}
            STRIPE_WEBHOOK_SECRET: {V2}
        """,
    ),
    _t(
        "platform/k8s/newsroom/deployment-liveblog.yaml",
        "t17_secret_name",
        False,
        """
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: liveblog
        spec:
          template:
            spec:
              containers:
                - name: liveblog
                  image: registry.nmg-media.net/newsroom/liveblog:3.4.2
                  env:
                    - name: SESSION_SECRET
                      valueFrom:
                        secretKeyRef:
                          name: {V}
                          key: session-secret
                    - name: DB_PASSWORD
                      valueFrom:
                        secretKeyRef:
                          name: {V2}
                          key: password
        """,
    ),
    _t(
        "platform/helm/wordpress-courier/values-prod.yaml",
        "t17_pw",
        True,
        """
        wordpressUsername: courieradmin
        wordpressPassword: "{V}"
        wordpressEmail: webteam@harwickcourier.co.uk
        mariadb:
          enabled: false
        externalDatabase:
          host: mysql-prod-01.nmg-media.net
          user: wp_courier
          password: "{V2}"
          database: courier_wp
        """,
    ),
    _t(
        "platform/helm/wordpress-courier/values.yaml",
        "t17_secret_name",
        False,
        """
        wordpressUsername: courieradmin
        existingSecret: {V}
        externalDatabase:
          host: mysql-prod-01.nmg-media.net
          user: wp_courier
          existingSecret: {V2}
          database: courier_wp
        """,
    ),
    _t(
        "platform/helm/newsroom/templates/secret.yaml",
        "t17_helm_ref",
        False,
        """
        apiVersion: v1
        kind: Secret
        metadata:
          name: {{ include "newsroom.fullname" . }}
        type: Opaque
        data:
          db-password: {V}
          smtp-password: {V2}
        """,
    ),
    _t(
        "platform/docker/config.json",
        "t17_docker_auth",
        True,
        """
        {
          "auths": {
            "registry.nmg-media.net": {
              "auth": "{V}"
            },
            "https://index.docker.io/v1/": {
              "auth": "{V2}"
            }
          }
        }
        """,
    ),
    _t(
        "platform/k8s/externalsecret-ghost.yaml",
        "t17_op_ref",
        False,
        """
        apiVersion: external-secrets.io/v1beta1
        kind: ExternalSecret
        metadata:
          name: ghost-mail
        spec:
          secretStoreRef:
            name: nmg-vault
            kind: ClusterSecretStore
          target:
            name: ghost-mail
          data:
            - secretKey: mail-password
              remoteRef:
                key: "{V}"
        """,
    ),
    _t(
        "platform/kube/bluewire-ci.kubeconfig",
        "t17_sa_token",
        True,
        """
        apiVersion: v1
        kind: Config
        clusters:
          - name: nmg-prod
            cluster:
              server: https://k8s-api.nmg-media.net:6443
              insecure-skip-tls-verify: true
        users:
          - name: bluewire-deployer
            user:
              token: {V}
        contexts:
          - name: nmg-prod
            context: { cluster: nmg-prod, user: bluewire-deployer, namespace: sites }
        current-context: nmg-prod
        """,
    ),
    _t(
        "platform/kube/admin.kubeconfig",
        "t17_kube_key",
        True,
        """
        apiVersion: v1
        kind: Config
        clusters:
          - name: nmg-staging
            cluster:
              server: https://10.20.9.4:6443
        users:
          - name: kubernetes-admin
            user:
              client-key-data: {V}
        current-context: kubernetes-admin@nmg-staging
        """,
    ),
    _t(
        "platform/secrets/prod.enc.yaml",
        "t17_sops",
        False,
        """
        wordpress:
            db_password: {V}
            redis_password: {V2}
        sops:
            kms:
                - arn: arn:aws:kms:eu-west-2:000000000000:alias/nmg-sops
            lastmodified: "2024-01-18T10:22:04Z"
            version: 3.8.1
        """,
    ),
    _t(
        "platform/ansible/group_vars/legacy/vault.yml",
        "t17_vault",
        False,
        """
        {V}
        """,
    ),
    _t(
        "platform/compose/images.lock",
        "t17_image_digest",
        False,
        """
        # pinned by renovate
        registry.nmg-media.net/newsroom/liveblog:3.4.2@{V}
        registry.nmg-media.net/newsroom/wire-ingest:1.19.0@{V2}
        wordpress:6.4-php8.2-apache@{V3}
        """,
    ),
    # ---------------------------------------------------------------- CI: Jenkins / GitHub Actions / Bitbucket
    _t(
        "ci/jenkins/Jenkinsfile.courier-deploy",
        "t17_ref_jenkins",
        False,
        """
        pipeline {
            agent { label 'php' }
            environment {
                DEPLOY_PASS = credentials('courier-sftp-deploy')
            }
            stages {
                stage('Deploy') {
                    steps {
                        sh 'composer install --no-dev --optimize-autoloader'
                        sh "lftp -u deploy,{V} sftp://web01.nmg-media.net -e 'mirror -R --delete web/app/themes /var/www/courier/web/app/themes; quit'"
                    }
                }
            }
        }
        """,
    ),
    _t(
        "ci/jenkins/Jenkinsfile.legacy-classifieds",
        "t17_pw",
        True,
        """
        node('linux') {
            stage('Checkout') { checkout scm }
            stage('Upload') {
                sh '''
                    sshpass -p '{V}' scp -o StrictHostKeyChecking=no -r cgi-bin/* www@legacy-web01.nmg-media.net:/var/www/cgi-bin/
                '''
            }
            stage('Restart') {
                sh "sshpass -p '{V}' ssh www@legacy-web01.nmg-media.net 'sudo apachectl graceful'"
            }
        }
        """,
    ),
    _t(
        "ci/jenkins/credentials.xml",
        "t17_jenkins_enc",
        False,
        """
        <com.cloudbees.plugins.credentials.impl.UsernamePasswordCredentialsImpl>
          <scope>GLOBAL</scope>
          <id>courier-sftp-deploy</id>
          <description>SFTP deploy user for web01</description>
          <username>deploy</username>
          <password>{V}</password>
        </com.cloudbees.plugins.credentials.impl.UsernamePasswordCredentialsImpl>
        <org.jenkinsci.plugins.plaincredentials.impl.StringCredentialsImpl>
          <scope>GLOBAL</scope>
          <id>slack-newsroom-webhook</id>
          <secret>{V2}</secret>
        </org.jenkinsci.plugins.plaincredentials.impl.StringCredentialsImpl>
        """,
    ),
    _t(
        ".github/workflows/deploy-gazette.yml",
        "t17_ref_gha",
        False,
        """
        name: Deploy Lakeside Gazette theme
        on:
          push:
            branches: [main]
        jobs:
          deploy:
            runs-on: ubuntu-latest
            steps:
              - uses: actions/checkout@v4
              - uses: SamKirkland/FTP-Deploy-Action@v4.3.4
                with:
                  server: ftp.lakesidegazette.com
                  username: gazette-deploy
                  password: {V}
                  local-dir: ./wp-content/themes/gazette/
                  server-dir: /public_html/wp-content/themes/gazette/
        """,
    ),
    _t(
        ".github/workflows/notify.yml",
        "t17_slack_hook",
        True,
        """
        name: Notify newsroom
        on:
          release:
            types: [published]
        jobs:
          slack:
            runs-on: ubuntu-latest
            steps:
              - name: Post to #digital-releases
                run: |
                  curl -sS -X POST -H 'Content-type: application/json' \\
                    --data "{\\"text\\":\\"${{ github.repository }} ${{ github.ref_name }} released\\"}" \\
                    {V}
        """,
    ),
    _t(
        ".github/workflows/release-app.yml",
        "t17_ref_gha",
        False,
        """
        name: Release Courier Android
        on:
          push:
            tags: ['android-v*']
        jobs:
          build:
            runs-on: ubuntu-latest
            env:
              KEYSTORE_PASSWORD: {V}
              KEY_PASSWORD: {V2}
            steps:
              - uses: actions/checkout@v4
              - run: echo "${{ secrets.KEYSTORE_B64 }}" | base64 -d > keystore/courier-release.jks
              - run: ./gradlew bundleRelease
        """,
    ),
    _t(
        "bitbucket-pipelines.yml",
        "t17_ref_ci",
        False,
        """
        image: php:8.1
        pipelines:
          branches:
            main:
              - step:
                  name: Deploy to production (git-ftp)
                  deployment: production
                  script:
                    - apt-get update && apt-get install -y git-ftp
                    - git ftp push --user "$FTP_USERNAME" --passwd {V} ftp://ftp.harwickcourier.co.uk/public_html
        """,
    ),
    _t(
        "legacy-sites/gazette-microsites/bitbucket-pipelines.yml",
        "t17_pw",
        True,
        """
        image: samueldebruyn/debian-git
        pipelines:
          default:
            - step:
                script:
                  - apt-get update && apt-get -qq install git-ftp
                  - git ftp push --user gazettemicro --passwd '{V}' ftp://ftp.lakesidegazette.com/microsites
        """,
    ),
    _t(
        "ci/scripts/trigger-bitbucket-pipeline.sh",
        "t17_bitbucket",
        True,
        """
        #!/bin/sh
        # kick the nightly build of the Bluewire theme repo from the NMG scheduler
        curl -sS -X POST -u "nmg-scheduler:{V}" \\
          -H 'Content-Type: application/json' \\
          https://api.bitbucket.org/2.0/repositories/bluewire/nmg-themes/pipelines/ \\
          -d '{"target": {"ref_type": "branch", "type": "pipeline_ref_target", "ref_name": "main"}}'
        """,
    ),
    _t(
        "ci/scripts/release-notes.sh",
        "t17_github",
        True,
        """
        #!/usr/bin/env bash
        set -e
        GH_TOKEN={V}
        TAG="$1"
        gh api repos/nmg-digital/liveblog/releases -f tag_name="$TAG" -f generate_release_notes=true \\
          -H "Authorization: token $GH_TOKEN"
        """,
    ),
    _t(
        "ci/jenkins/casc/jenkins.yaml",
        "t17_ref_jcasc",
        False,
        """
        jenkins:
          securityRealm:
            local:
              allowsSignup: false
              users:
                - id: admin
                  password: {V}
        unclassified:
          slackNotifier:
            teamDomain: nmg-digital
            tokenCredentialId: slack-newsroom-token
        """,
    ),
    _t(
        "ci/CHANGELOG.md",
        "t17_gitsha",
        False,
        """
        # Changelog

        ## 3.4.2 (2024-02-09)
        - Fix the live blog pin order ({V})
        - Paywall: honour the gift-link query parameter ({V2})

        ## 3.4.1 (2024-01-30)
        - Revert image lazy-loading for AMP pages ({V3})
        """,
    ),
    # ---------------------------------------------------------------- SFTP / FTP syndication
    _t(
        "syndication/scripts/push_to_pressreader.sh",
        "t17_pw",
        True,
        """
        #!/bin/bash
        # nightly e-edition PDFs to PressReader (contract ref PR-UK-2209)
        DATE=$(date +%Y%m%d)
        lftp -u "nmg_harwick,{V}" sftp://ftp.pressreader.com <<EOF
        set sftp:auto-confirm yes
        cd /incoming/HARWICK
        mput /data/eedition/$DATE/*.pdf
        bye
        EOF
        """,
    ),
    _t(
        "syndication/config/.netrc",
        "t17_pw",
        True,
        """
        machine ftp.legacy-partners.co.uk
        login harwickcourier
        password {V}

        machine feeds.newsnow.co.uk
        login nmgfeeds
        password {V2}
        """,
    ),
    _t(
        "syndication/filezilla/sitemanager.xml",
        "t17_filezilla",
        True,
        """
        <?xml version="1.0" encoding="UTF-8"?>
        <FileZilla3 version="3.63.1" platform="windows">
          <Servers>
            <Server>
              <Host>ftp.lakesidegazette.com</Host>
              <Port>21</Port>
              <Protocol>0</Protocol>
              <Type>0</Type>
              <User>gazetteweb</User>
              <Pass encoding="base64">{V}</Pass>
              <Name>Gazette (old cPanel)</Name>
            </Server>
          </Servers>
        </FileZilla3>
        """,
    ),
    _t(
        "syndication/keys/pa_media_sftp",
        "t17_openssh",
        True,
        """
        {V}
        """,
    ),
    _t(
        "syndication/keys/pa_media_sftp.pub",
        "t17_sshpub",
        False,
        """
        {V}
        """,
    ),
    _t(
        "syndication/keys/known_hosts",
        "t17_hostkey",
        False,
        """
        sftp.pamedia.com,185.48.120.33 {V}
        ftp.pressreader.com {V2}
        """,
    ),
    _t(
        "syndication/scripts/fetch_wire_keyring.py",
        "t17_ref_py",
        False,
        """
        import keyring
        import paramiko

        transport = paramiko.Transport(("sftp.pamedia.com", 22))
        transport.connect(username="nmg_courier", password={V})
        sftp = paramiko.SFTPClient.from_transport(transport)
        print(sftp.listdir("/outgoing"))
        """,
    ),
    _t(
        "syndication/scripts/curl_upload.sh",
        "t17_urlpw",
        True,
        """
        #!/bin/sh
        # upload the racing cards for the Pulse sport supplement
        FILE="/data/racing/cards-$(date +%F).xml"
        curl -sS --ftp-ssl -T "$FILE" "ftp://racecards:{V}@ftp.turfdata.co.uk/incoming/"
        """,
    ),
    _t(
        "syndication/config/partners.yml",
        "t17_path",
        False,
        """
        partners:
          pa_media:
            host: sftp.pamedia.com
            user: nmg_courier
            key_file: {V}
            remote_dir: /outgoing
          pressreader:
            host: ftp.pressreader.com
            user: nmg_harwick
            password_file: {V2}
        """,
    ),
    _t(
        "syndication/keys/nmg-feeds-public.asc",
        "t17_pgp_pub",
        False,
        """
        {V}
        """,
    ),
    _t(
        "syndication/docs/partner-onboarding.md",
        "t17_example",
        False,
        """
        # Onboarding a syndication partner

        Give the partner an SFTP account on `sftp.nmg-media.net` and test it from your laptop.
        The example below uses the documentation host:

            sftp demo-partner@sftp.example.com      # password: {V}
            curl -u demo:{V2} ftp://ftp.example.org/outgoing/

        Never email real passwords; share them through Bitwarden Send.
        """,
    ),
    # ---------------------------------------------------------------- CDN / hosting / infra
    _t(
        "infra/akamai/.edgerc",
        "t17_edgerc",
        True,
        """
        [default]
        {V}
        max-body = 131072

        [ccu]
        {V2}
        """,
    ),
    _t(
        "infra/cloudflare/purge_cache.py",
        "t17_cloudflare",
        True,
        """
        import requests

        ZONE = "harwickcourier.co.uk"
        CF_API_TOKEN = "{V}"

        def purge(urls: list[str]) -> None:
            zone_id = requests.get("https://api.cloudflare.com/client/v4/zones", params={"name": ZONE},
                                   headers={"Authorization": f"Bearer {CF_API_TOKEN}"}, timeout=10).json()["result"][0]["id"]
            requests.post(f"https://api.cloudflare.com/client/v4/zones/{zone_id}/purge_cache",
                          headers={"Authorization": f"Bearer {CF_API_TOKEN}"}, json={"files": urls}, timeout=10)
        """,
    ),
    _t(
        "infra/cloudflare/terraform.tfvars",
        "t17_cf_zone",
        False,
        """
        # zone and account ids (not secret); the API token comes from TF_VAR_cloudflare_api_token
        courier_zone_id = "{V}"
        gazette_zone_id = "{V2}"
        pulse_zone_id   = "{V3}"
        account_id      = "{V4}"
        """,
    ),
    _t(
        "infra/nginx/staging-basic-auth.conf",
        "t17_basic",
        True,
        """
        # Varnish health check and the agency preview proxy need to get past basic auth on staging
        location /preview/ {
            proxy_pass https://staging.harwickcourier.co.uk/;
            proxy_set_header Authorization "Basic {V}";
            proxy_set_header Host staging.harwickcourier.co.uk;
        }
        """,
    ),
    _t(
        "infra/certs/staging.harwickcourier.co.uk.key",
        "t17_rsa",
        True,
        """
        {V}
        """,
    ),
    _t(
        "infra/certs/staging.harwickcourier.co.uk.crt",
        "t17_cert",
        False,
        """
        {V}
        """,
    ),
    _t(
        "infra/cpanel/backup_all.sh",
        "t17_cpanel",
        True,
        """
        #!/bin/bash
        # full backups of the small titles still on the reseller WHM box
        WHM_HOST=whm.reseller-host.co.uk
        TOKEN={V}
        for acct in gazettemicro pulseevents harwickjobs; do
          curl -sS -H "Authorization: whm nmgreseller:$TOKEN" \\
            "https://$WHM_HOST:2087/json-api/backup_user?api.version=1&user=$acct"
        done
        """,
    ),
    _t(
        "infra/dns/harwickcourier.co.uk.zone",
        "t17_dkim",
        False,
        """
        $ORIGIN harwickcourier.co.uk.
        @        3600 IN MX   10 mx1.nmg-media.net.
        @        3600 IN TXT  "v=spf1 include:sendgrid.net include:servers.mcsv.net -all"
        s1._domainkey 3600 IN TXT "k=rsa; p={V}"
        k1._domainkey 3600 IN TXT "k=rsa; p={V2}"
        _dmarc   3600 IN TXT  "v=DMARC1; p=quarantine; rua=mailto:dmarc@nmg-media.net"
        """,
    ),
    _t(
        "infra/mongo/comments-service.env",
        "t17_urlpw",
        True,
        """
        # comments service (Coral Talk), Atlas cluster
        MONGODB_URI=mongodb+srv://coral:{V}@comments-prod.x7kqz.mongodb.net/coral?retryWrites=true&w=majority
        REDIS_URI=redis://redis-comments:6379
        """,
    ),
    _t(
        "infra/elastic/kibana.yml",
        "t17_ref_kibana",
        False,
        """
        server.host: "0.0.0.0"
        elasticsearch.hosts: ["https://es-logs.nmg-media.net:9200"]
        elasticsearch.username: "kibana_system"
        elasticsearch.password: "{V}"
        xpack.security.encryptionKey: "{V2}"
        """,
    ),
    _t(
        "infra/monitoring/alertmanager.yml",
        "t17_teams_hook",
        True,
        """
        route:
          receiver: newsroom-ops
          group_wait: 30s
        receivers:
          - name: newsroom-ops
            msteams_configs:
              - webhook_url: "{V}"
                send_resolved: true
        """,
    ),
    _t(
        "infra/monitoring/grafana.ini",
        "t17_weak",
        True,
        """
        [server]
        domain = grafana.nmg-media.net
        root_url = https://grafana.nmg-media.net/

        [security]
        admin_user = admin
        admin_password = {V}
        disable_gravatar = true
        """,
    ),
    _t(
        "infra/aws/config",
        "t17_aws_account",
        False,
        """
        [profile nmg-video]
        role_arn = arn:aws:iam::{V}:role/video-ops
        source_profile = sso
        region = eu-west-2

        [profile nmg-web]
        sso_account_id = {V2}
        sso_role_name = WebAdmin
        """,
    ),
    _t(
        "infra/legacy-cron/crontab.web01",
        "t17_aws_env",
        True,
        """
        # m h  dom mon dow   command
        {V}
        15 3 * * * /usr/local/bin/aws s3 sync /var/www/courier/web/app/uploads s3://nmg-courier-uploads-backup/ --quiet
        30 4 * * 0 /usr/bin/find /var/backups/mysql -mtime +14 -delete
        """,
    ),
    _t(
        "infra/legacy-cron/mysql-backup.cnf",
        "t17_ph",
        False,
        """
        # copy to /root/.my.cnf (mode 0600) and put the backup user's password in it
        [client]
        user = backup
        password = {V}
        host = mysql-prod-01.nmg-media.net
        """,
    ),
    _t(
        "infra/slack/deploy_bot.py",
        "t17_slack_bot",
        True,
        """
        from slack_sdk import WebClient

        client = WebClient(token="{V}")

        def announce(site: str, version: str) -> None:
            client.chat_postMessage(channel="#web-deploys", text=f"{site} {version} is live")
        """,
    ),
    _t(
        "infra/uploads/cloudinary.env",
        "t17_cloudinary",
        True,
        """
        # image CDN for Pulse Weekly galleries
        CLOUDINARY_URL={V}
        CLOUDINARY_UPLOAD_FOLDER=pulse/galleries
        """,
    ),
    _t(
        "sites/harwick-courier/composer.lock.excerpt",
        "t17_sha256",
        False,
        """
        {
            "name": "wpackagist-plugin/wordpress-seo",
            "version": "21.9.1",
            "dist": {
                "type": "zip",
                "url": "https://downloads.wordpress.org/plugin/wordpress-seo.21.9.1.zip",
                "shasum": "{V}"
            }
        }
        """,
    ),
    _t(
        "sites/harwick-courier/web/app/themes/courier/dist/manifest.json",
        "t17_asset_hash",
        False,
        """
        {
          "main.js": "/app/themes/courier/dist/main.{V}.js",
          "main.css": "/app/themes/courier/dist/main.{V2}.css",
          "paywall.js": "/app/themes/courier/dist/paywall.{V3}.js"
        }
        """,
    ),
    _t(
        "sites/harwick-courier/web/app/themes/courier/partials/head.php",
        "t17_sri",
        False,
        """
        <link rel="preconnect" href="https://cdn.jsdelivr.net" crossorigin>
        <script src="https://cdn.jsdelivr.net/npm/lazysizes@5.3.2/lazysizes.min.js"
                integrity="{V}" crossorigin="anonymous" async></script>
        <link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/glightbox@3.2.0/dist/css/glightbox.min.css"
              integrity="{V2}" crossorigin="anonymous">
        """,
    ),
    # ---------------------------------------------------------------- Agency handover docs
    _t(
        "handover/bluewire/HANDOVER.md",
        "t17_pw",
        True,
        """
        # Harwick Courier WordPress - handover from Bluewire Digital (March 2023)

        ## Access

        | System | URL | User | Password |
        |--------|-----|------|----------|
        | WP admin | https://www.harwickcourier.co.uk/wp/wp-admin | bluewire_support | {V} |
        | SFTP | sftp://web01.nmg-media.net | deploy | {V2} |
        | Staging basic auth | https://staging.harwickcourier.co.uk | nmgreview | {V3} |

        Please rotate all of these once the NMG team has taken over.
        """,
    ),
    _t(
        "handover/bluewire/HANDOVER-v2.md",
        "t17_op_ref",
        False,
        """
        # Harwick Courier WordPress - handover (revised after security review)

        ## Access

        All credentials have been moved out of this document.

        - WP admin (bluewire_support): {V}
        - SFTP deploy user: {V2}
        - Staging basic auth: {V3}

        Ask the NMG digital lead to be added to the vault.
        """,
    ),
    _t(
        "handover/fathom-fold/Gazette handover notes.txt",
        "t17_pw",
        True,
        """
        LAKESIDE GAZETTE - SITE HANDOVER
        Fathom & Fold, 12/09/2019

        Hosting: cPanel reseller (whm.reseller-host.co.uk)
          cPanel login ....... gazetteweb / {V}
          MySQL .............. gazette_wp / {V2}

        Mailchimp: login is the marketing team's, not ours.
        Domain: registered with 123-reg by NMG IT.
        """,
    ),
    _t(
        "handover/fathom-fold/handover.html",
        "t17_weak",
        True,
        """
        <!DOCTYPE html>
        <html lang="en">
        <head><meta charset="utf-8"><title>Pulse Events - Handover</title></head>
        <body>
        <h1>Pulse Events (Joomla 3) - handover</h1>
        <h2>Administrator</h2>
        <p>URL: <a href="https://events.pulseweekly.com/administrator">events.pulseweekly.com/administrator</a></p>
        <p>Username: <code>pulseadmin</code><br>Password: <code>{V}</code></p>
        <p>Joomla 3 is end of life; plan the migration before renewing the hosting.</p>
        </body>
        </html>
        """,
    ),
    _t(
        "handover/fathom-fold/handover-redacted.html",
        "t17_ph",
        False,
        """
        <!DOCTYPE html>
        <html lang="en">
        <head><meta charset="utf-8"><title>Pulse Events - Handover (public copy)</title></head>
        <body>
        <h2>Administrator</h2>
        <p>Username: <code>pulseadmin</code><br>Password: <code>{V}</code></p>
        <h2>FTP</h2>
        <p>User: <code>pulseevents</code><br>Password: <code>{V2}</code></p>
        </body>
        </html>
        """,
    ),
    _t(
        "handover/bluewire/hosting.md",
        "t17_cf_zone",
        False,
        """
        ## Cloudflare

        Both titles are on the NMG Cloudflare account. Zone ids, for the API and Terraform:

        - harwickcourier.co.uk: `{V}`
        - lakesidegazette.com: `{V2}`

        API tokens are personal; create your own under *My Profile > API Tokens*.
        """,
    ),
    _t(
        "handover/bluewire/analytics.md",
        "t17_ga_id",
        False,
        """
        ## Analytics and tags

        | Property | ID |
        |----------|----|
        | GA4 (Courier) | {V} |
        | GTM container | {V2} |
        | Google Ads conversion | {V3} |

        Consent mode is wired through the CMP; do not add tags outside GTM.
        """,
    ),
    _t(
        "handover/bluewire/servers.md",
        "t17_fingerprint",
        False,
        """
        ## Servers

        Verify host keys on first connection:

        | Host | Fingerprint (ED25519) |
        |------|------------------------|
        | web01.nmg-media.net | {V} |
        | web02.nmg-media.net | {V2} |
        | legacy-web01.nmg-media.net | {V3} |
        """,
    ),
    _t(
        "handover/bluewire/servers-access.md",
        "t17_sshpub",
        False,
        """
        ## Agency access

        Keys currently in `/home/deploy/.ssh/authorized_keys` on web01 (remove at the end of the contract):

        ```
        {V}
        {V2}
        ```
        """,
    ),
    _t(
        "handover/paywall/README.md",
        "t17_text",
        False,
        """
        # Paywall (metering service)

        The meter allows five free articles per month; then the login prompt appears with the text:

        > {V}

        Subscribers log in with Piano ID. Support resets passwords from the Piano dashboard only.
        """,
    ),
    _t(
        "handover/paywall/stripe-setup.md",
        "t17_example",
        False,
        """
        ## Local Stripe testing

        Use the Stripe CLI against the local API and the demo account on the docs host:

            stripe listen --forward-to localhost:8000/webhooks/stripe
            psql postgres://paywall_demo:{V}@db.example.com/paywall_demo

        Card `4242 4242 4242 4242`, any future date, any CVC.
        """,
    ),
    _t(
        "handover/mobile/release-guide-v2.md",
        "t17_op_ref",
        False,
        """
        # Courier apps - release guide

        Signing secrets are not in this repository:

        - Android keystore and passwords: {V}
        - fastlane match passphrase: {V2}
        """,
    ),
    _t(
        "handover/security/password-policy.md",
        "t17_number",
        False,
        """
        # NMG web password policy (agencies)

        - Minimum length for CMS admin accounts: {V} characters
        - Lockout after {V2} failed attempts
        - Agency accounts expire at the end of the contract
        - Shared accounts are not allowed; use named accounts
        """,
    ),
    _t(
        "handover/legacy/coldfusion-notes.md",
        "t17_descrypt",
        False,
        """
        ## ColdFusion events app

        The admin login is checked against `Application.cfc`; legacy members are checked with
        DES crypt hashes imported from the 2008 Perl site, e.g. `{V}` (user `subs`).
        Nobody knows the plaintexts any more; reset through the admin.
        """,
    ),
]
