"""A second, hand-written labelled set: real-world-looking lines, not generated.

``corpus.py`` generates its lines from templates; a scanner tuned on it could
learn the templates. These lines were written by hand in the styles found in
public repositories (weak human passwords, test fixtures, framework config,
DSNs, CLI snippets) and are scored separately. All values are made up.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

POSITIVE = [
    (
        "app/settings.py",
        "DATABASES = {'default': {'ENGINE': 'django.db.backends.mysql', 'NAME': 'shop', 'USER': 'root', 'PASSWORD': 'root123'}}",
    ),
    ("tests/test_views.py", "        self.client.login(username='admin', password='admin123')"),
    ("src/db.js", "mongoose.connect('mongodb://admin:S3cure!Pass@localhost:27017/app');"),
    ("web/config.php", '$db_pass = "qwerty2020";'),
    ("deploy/values.yaml", '  smtp_password: "Tr1ckyP@ss"'),
    ("scripts/backup.sh", "PGPASSWORD=pgpass2021 pg_dump -h db -U app app > app.sql"),
    (
        "scripts/call.sh",
        'curl -s -H "X-Api-Key: 9f8e7d6c5b4a39281706f5e4d3c2b1a0" https://api.acme.io/v1/jobs',
    ),
    (
        "etl/load.py",
        'conn = pymysql.connect(host="10.0.0.5", user="etl", passwd="etl@2021!", db="dw")',
    ),
    ("client/api.py", "auth = HTTPBasicAuth('apiuser', 'ApiP4ss!')"),
    (
        "src/main/resources/hibernate.cfg.xml",
        '<property name="hibernate.connection.password" value="hibpass99"/>',
    ),
    ("tools/setenv.bat", "set DB_PASSWORD=Summer2019"),
    ("fixtures/users.json", '  {"username": "bob", "password": "Zaq12wsx"},'),
    (
        "cmd/server/main.go",
        'db, err := sql.Open("mysql", "root:Mysql#2020@tcp(127.0.0.1:3306)/test")',
    ),
    ("config/initializers/mail.rb", "  config.password = 'rubyR0cks'"),
    ("infra/vm.tf", '  admin_password = "P@ssw0rd1234!"'),
    ("inventory/group_vars/pi.yml", "ansible_ssh_pass: raspberry"),
    ("app/src/main/resources/application.properties", "spring.datasource.password=Welcome1"),
    (
        "appsettings.Development.json",
        '    "Default": "Server=.;Database=Shop;User Id=sa;Password=Sql@dmin2019;"',
    ),
    ("src/Mailer.java", '        props.put("mail.smtp.password", "gmailpass88");'),
    ("src/config.ts", "export const REDIS_URL = 'redis://:r3d1sP4ss@cache.internal:6379';"),
    ("docker-compose.override.yml", "      - POSTGRES_PASSWORD=devpass42"),
    ("k8s/secret.yaml", "  password: c3VwZXJzZWNyZXQ="),
    (
        "notebooks/explore.py",
        'openai.api_key = "sk-Zr3Kd9TfLm4Ns7Wv1Xb6Qc2Jh8Pe5Ry0Ug3Ki9Ol7Mn1Bv4C"',
    ),
    ("src/app.py", 'app.config["SECRET_KEY"] = "f3a8c1e09b7d4e2a9c6b5d8e7f1a2b3c"'),
    ("bot/config.py", 'SLACK_SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"'),
    (
        "src/Program.cs",
        'var client = new SmtpClient("smtp.acme.com") { Credentials = new NetworkCredential("noreply", "N0Reply!2022") };',
    ),
    ("tests/conftest.py", '    return {"username": "tester", "password": "Test1234!"}'),
    ("README.md", "    mysql -h 127.0.0.1 -u root -pMyR00tPw wordpress"),
    (
        "ci/.gitlab-ci.yml",
        "    - docker login -u gitlab-ci-token -p glpat-Xy7Wq2Lm9Zk4Pn8Rt3Vb registry.gitlab.com",
    ),
    (".npmrc", "//registry.npmjs.org/:_authToken=3f8a1c9e-2b7d-4e6f-a0c1-9d8e7f6a5b4c"),
    ("src/ldap.py", 'conn.simple_bind_s("cn=admin,dc=corp,dc=com", "Ld4pAdm!n")'),
    ("deploy.ps1", '$password = "Adm1nistrat0r!"'),
    ("src/config.rs", 'const DB_PASS: &str = "rustacean2023";'),
    ("settings.ini", "password=letmein2021"),
    ("src/routes.js", 'const jwtSecret = "my-super-secret-jwt-key-2021";'),
    ("app/build.gradle", "    storePassword 'android123'"),
    ("src/test/java/LoginTest.java", '        loginPage.login("standard_user", "secret_sauce");'),
    ("scripts/ftp.py", "ftp.login('ftpuser', 'Ftp!2020')"),
    ("wp-config.php", "define( 'DB_PASSWORD', 'wp_pass_2019' );"),
]

NEGATIVE = [
    ("app/views.py", "    password = request.POST.get('password')"),
    ("app/models.py", "        if user.check_password(password):"),
    ("app/forms.py", "    password_confirm = forms.CharField(widget=forms.PasswordInput)"),
    ("app/settings.py", 'db_password = os.getenv("DB_PASSWORD", "")'),
    ("app/auth.py", 'token = jwt.encode(payload, settings.SECRET_KEY, algorithm="HS256")'),
    ("app/client.py", 'api_key = config["api_key"]'),
    ("templates/login.html", '<input type="password" name="pass" placeholder="Password">'),
    ("roles/db/tasks/main.yml", "    password: \"{{ lookup('env', 'DB_PASS') }}\""),
    ("templates/config.json.erb", '  "password": "<%= @password %>",'),
    ("entrypoint.sh", "PASSWORD=$(cat /run/secrets/db_password)"),
    ("config/secrets.yml", '  secret_key_base: <%= ENV["SECRET_KEY_BASE"] %>'),
    ("app/session.py", "    auth_token = None"),
    ("config.json", '  "token": "${TOKEN}",'),
    ("spec/api.test.js", "    expect(response.body.token).toBeDefined();"),
    (
        "src/Validator.java",
        'private static final String PASSWORD_PATTERN = "^(?=.*[0-9]).{8,20}$";',
    ),
    ("app/users.py", "    password = generate_password(length=16)"),
    ("ci/deploy.sh", 'export VAULT_TOKEN="$(vault login -token-only)"'),
    ("tests/data.py", 'EMPTY_SHA1 = "da39a3ee5e6b4b0d3255bfef95601890afd80709"'),
    ("app/ids.py", 'DEFAULT_TENANT = "f47ac10b-58cc-4372-a567-0e02b2c3d479"'),
    ("app/config.py", '    api_key: str = Field(..., env="API_KEY")'),
    ("app/db.py", "conn = psycopg2.connect(password=os.environ.get('PG_PASS'))"),
    ("src/auth.js", '  secret: process.env.JWT_SECRET || "",'),
    ("app/oauth.py", "token_url='https://oauth2.example.com/token'"),
    ("app/const.py", "DEFAULT_TOKEN_LIFETIME = 3600"),
    ("app/tasks.py", "# TODO: read the password from vault instead of the environment"),
    ("app/mail.py", 'logger.info("password reset email sent to %s", email)'),
    ("app/google.py", "client_secret = settings.GOOGLE_CLIENT_SECRET"),
    (".github/workflows/ci.yml", "          password: ${{ secrets.DOCKERHUB_TOKEN }}"),
    ("docs/config.md", "| `password` | string | The database password. |"),
    ("app/i18n.py", '    "reset_password": "Reset your password",'),
    ("src/types.ts", "  password?: string;"),
    ("app/serializers.py", "        extra_kwargs = {'password': {'write_only': True}}"),
    (
        "migrations/0001.py",
        "                ('password', models.CharField(max_length=128, verbose_name='password')),",
    ),
    (
        "app/crypto.py",
        "    key = hashlib.pbkdf2_hmac('sha256', password.encode('utf-8'), salt, 100000)",
    ),
    ("values.yaml", "  existingSecret: postgres-credentials"),
    ("app/settings.py", "SECRET_KEY = get_random_secret_key()"),
    ("config/database.yml", "  password: <%= ENV['DATABASE_PASSWORD'] %>"),
    ("docker-compose.yml", "      - POSTGRES_PASSWORD_FILE=/run/secrets/pg_password"),
    (
        "tests/test_hash.py",
        "    assert sha256(b'').hexdigest() == 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'",
    ),
    ("app/keys.py", 'PUBLIC_KEY_ID = "3b241101-e2bb-4255-8caf-4136c566a962"'),
]


def build(out: Path) -> dict[str, int]:
    if out.exists():
        shutil.rmtree(out)
    files: dict[str, list[str]] = {}
    labels = []
    for positive, items in ((True, POSITIVE), (False, NEGATIVE)):
        for path, line in items:
            lines = files.setdefault(path, [])
            lines.append(line)
            n = len(lines)
            labels.append(
                {"path": path, "first": n, "last": n, "positive": positive, "kind": "hand"}
            )
    for path, lines in files.items():
        target = out / "files" / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("\n".join(lines) + "\n")
    (out / "labels.json").write_text(json.dumps(labels, indent=1))
    return {"positives": len(POSITIVE), "negatives": len(NEGATIVE)}


if __name__ == "__main__":
    print(build(Path(__file__).parent / ".corpus" / "realworld"))
