"""Real servers on free loopback ports, for the template's tests and `make bench`: `mlflow
server` (sqlite backend, local artifacts), a ZenML server (`zenml[server]` in an environment
of its own, sqlite or a store URL given) with a service account and its API key, a PostgreSQL
server (Debian's `postgresql`, a cluster of its own in a temporary directory), a MariaDB server
(Debian's `mariadb-server`, a data directory of its own in one), a Spark standalone cluster
(a project's pyspark, its own `bin/spark-class`) and a proxy that breaks an answer. No pytest,
no side effects on import.
"""

import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent  # the template's dev environment: mlflow, uv
# The generated projects pin zenml 0.98: the server must speak their API version.
ZENML_SERVER_REQUIREMENT = "zenml[server]==0.98.*"
SERVICE_ACCOUNT = "fraud-detector-ci"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_healthy(uri: str, process: subprocess.Popen, log: Path, seconds: int = 120) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(f"{uri}/health", timeout=2).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"server at {uri} did not start:\n{log.read_text()[-3000:]}"
                ) from None
            time.sleep(0.5)


@contextmanager
def _process(command: list[str], workdir: Path, env: dict, uri: str, seconds: int):
    """Run a server in its own process group until the block ends; yield once it is healthy."""
    log = workdir / "server.log"
    process = subprocess.Popen(
        command,
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
        start_new_session=True,
    )
    try:
        wait_until_healthy(uri, process, log, seconds)
        yield
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)


@contextmanager
def mlflow_server(
    workdir: Path, extra=(), env: dict | None = None, backend: str = "", workers: int = 1
) -> Iterator[str]:
    """`mlflow server` (a sqlite backend unless `backend` names another, artifacts proxied to
    a local folder); yields its URI."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    backend = backend or f"sqlite:///{workdir / 'mlflow.db'}"
    command = [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--workers", str(workers), "--backend-store-uri", backend]
    command += ["--artifacts-destination", str(workdir / "artifacts"), *extra]
    server_env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **(env or {})}
    with _process(command, workdir, server_env, uri, seconds=180):
        yield uri


def basic_auth_env(workdir: Path, admin: tuple[str, str], database: str = "") -> dict[str, str]:
    """What `mlflow server --app-name basic-auth` needs: an ini with this admin (MLflow wants a
    password of >= 12 characters, and has no default), its users' database (sqlite unless
    `database` names another) and a Flask secret key."""
    config, database = workdir / "basic_auth.ini", database or f"sqlite:///{workdir / 'auth.db'}"
    config.write_text(
        "[mlflow]\ndefault_permission = READ\n"
        f"database_uri = {database}\n"
        f"admin_username = {admin[0]}\nadmin_password = {admin[1]}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        # Without a cache every request re-checks the password (~0.3 s): training 2.5x slower.
        "auth_cache_ttl_seconds = 300\n"
    )
    return {
        "MLFLOW_AUTH_CONFIG_PATH": str(config),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),
    }


def create_user(uri: str, admin: tuple[str, str], user: tuple[str, str]) -> None:
    """A non-admin user, made through the REST API as an admin would."""
    credentials = base64.b64encode(":".join(admin).encode()).decode()
    request = urllib.request.Request(
        f"{uri}/api/2.0/mlflow/users/create",
        data=json.dumps({"username": user[0], "password": user[1]}).encode(),
        headers={"Authorization": f"Basic {credentials}", "Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=10).close()


@dataclass(frozen=True)
class AuthServer:
    uri: str
    admin: tuple[str, str]
    user: tuple[str, str]  # a non-admin user


@contextmanager
def mlflow_auth_server(workdir: Path, username: str = "alice") -> Iterator[AuthServer]:
    """`mlflow server --app-name basic-auth` with one non-admin user."""
    workdir.mkdir(parents=True, exist_ok=True)
    admin = ("admin", f"admin-{secrets.token_hex(8)}")
    user = (username, f"pw-{secrets.token_hex(10)}")
    env = basic_auth_env(workdir, admin)
    with mlflow_server(workdir, ["--app-name", "basic-auth"], env) as uri:
        create_user(uri, admin, user)
        yield AuthServer(uri, admin, user)


@dataclass(frozen=True)
class TeamServer:
    uri: str
    admin: tuple[str, str]
    users: dict[str, tuple[str, str]]  # name -> (name, password); none of them admins
    postgres: "PostgresServer | None"  # None: on sqlite
    artifacts: Path  # where the server keeps them (clients never write here)


@contextmanager
def mlflow_team_server(
    workdir: Path, users=("alice", "bob"), database: str = "postgresql"
) -> Iterator[TeamServer]:
    """`mlflow server` as a team runs it (the generated docs/team-tracker.md): runs and users
    (basic auth, default permission READ) in PostgreSQL, artifacts proxied by the server
    (`--serve-artifacts`: clients never see the storage), 2 workers. `database="sqlite"`: the
    same server on sqlite files, to compare."""
    workdir.mkdir(parents=True, exist_ok=True)
    admin = ("admin", f"admin-{secrets.token_hex(8)}")
    options = ["--app-name", "basic-auth", "--serve-artifacts"]
    with contextlib.ExitStack() as stack:
        postgres, backend, auth_database = None, "", ""
        if database == "postgresql":
            postgres = stack.enter_context(postgres_server(database="mlflow", user="mlflow"))
            postgres.psql("CREATE DATABASE mlflow_auth OWNER mlflow")
            backend = postgres.url
            auth_database = postgres.url.rsplit("/", 1)[0] + "/mlflow_auth"
        env = basic_auth_env(workdir, admin, database=auth_database)
        server = mlflow_server(workdir, options, env, backend=backend, workers=2)
        uri = stack.enter_context(server)
        accounts = {name: (name, f"pw-{secrets.token_hex(10)}") for name in users}
        for account in accounts.values():
            create_user(uri, admin, account)
        yield TeamServer(uri, admin, accounts, postgres, workdir / "artifacts")


@dataclass(frozen=True)
class ZenmlServer:
    url: str
    api_key: str  # the service account's
    workdir: Path  # the server's database and config

    def api(self, path: str, token: str, **query: str) -> dict:
        url = f"{self.url}/api/v1{path}?{urllib.parse.urlencode(query)}"
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=10) as reply:
            return json.loads(reply.read())

    def token(self) -> str:
        """Log in as the service account, as the project does."""
        form = {"grant_type": "zenml-api-key", "password": self.api_key}
        return post(f"{self.url}/api/v1/login", form)["access_token"]


def post(url: str, form: dict | None = None, json_body: dict | None = None, token: str = ""):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if json_body is not None:
        data, headers["Content-Type"] = json.dumps(json_body).encode(), "application/json"
    else:
        data = urllib.parse.urlencode(form or {}).encode()
    request = urllib.request.Request(url, data=data, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as reply:
        return json.loads(reply.read())


@contextmanager
def zenml_server(workdir: Path, store_url: str = "") -> Iterator[ZenmlServer]:
    """`uvicorn zenml.zen_server.zen_server_api:app` (the entry point of `zenml login --local`
    and of ZenML's server image) with OAuth2 authentication, activated at start with an admin
    whose password only this function knows; a service account and its API key made over the
    REST API as an admin would. Its database: `store_url` (e.g. `MariadbServer.url`), else a
    sqlite file in `workdir`."""
    workdir.mkdir(parents=True, exist_ok=True)
    port, admin_password = free_port(), f"admin-{secrets.token_hex(8)}"
    url = f"http://127.0.0.1:{port}"
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("ZENML_", "MLFLOW_"))}
    env = {
        **inherited,
        "ZENML_SERVER": "true",
        "ZENML_CONFIG_PATH": str(workdir / "config"),
        "ZENML_STORE_URL": store_url or f"sqlite:///{workdir / 'server.db'}",
        "ZENML_SERVER_AUTO_ACTIVATE": "true",
        "ZENML_DEFAULT_USER_NAME": "admin",
        "ZENML_DEFAULT_USER_PASSWORD": admin_password,
        "ZENML_SERVER_JWT_SECRET_KEY": secrets.token_hex(32),
        "ZENML_ANALYTICS_OPT_IN": "false",
    }
    command = [str(BIN / "uv"), "run", "--no-project", "--python", sys.executable]
    command += ["--with", ZENML_SERVER_REQUIREMENT]
    command += ["uvicorn", "zenml.zen_server.zen_server_api:app"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--no-server-header"]
    with _process(command, workdir, env, url, seconds=180):
        admin = post(f"{url}/api/v1/login", {"username": "admin", "password": admin_password})
        token = admin["access_token"]
        account = post(
            f"{url}/api/v1/service_accounts",
            json_body={"name": SERVICE_ACCOUNT, "active": True},
            token=token,
        )
        key = post(
            f"{url}/api/v1/service_accounts/{account['id']}/api_keys",
            json_body={"name": "laptop"},
            token=token,
        )["body"]["key"]
        yield ZenmlServer(url, key, workdir)


@contextmanager
def cutting_proxy(target: str, *markers: bytes) -> Iterator[str]:
    """A loopback TCP proxy to `target` (http://host:port) that cuts off, halfway through its
    body, the answer to the first request containing each of `markers`: what a client sees
    when the server dies while answering. Yields the proxy's URI; the server stays real."""
    host, port = urllib.parse.urlsplit(target).hostname, urllib.parse.urlsplit(target).port
    listener = socket.create_server(("127.0.0.1", 0))
    uri = f"http://127.0.0.1:{listener.getsockname()[1]}"
    uncut = set(markers)

    def relay(source: socket.socket, sink: socket.socket, answer: dict) -> None:
        try:
            while data := source.recv(65536):
                if answer["cut"] and answer["to"] is sink:
                    while b"\r\n\r\n" not in data:
                        data += source.recv(65536)
                    head, body = data.split(b"\r\n\r\n", 1)
                    sink.sendall(head + b"\r\n\r\n" + body[: len(body) // 2])
                    break
                hit = {marker for marker in uncut if marker in data}
                if hit and answer["to"] is source:
                    uncut.difference_update(hit)
                    answer["cut"] = True
                sink.sendall(data)
        except OSError:
            pass
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def accept() -> None:
        with contextlib.suppress(OSError):  # the listener closed: done
            while True:
                client, _ = listener.accept()
                server = socket.create_connection((host, port))
                answer = {"cut": False, "to": client}
                for ends in ((client, server), (server, client)):
                    threading.Thread(target=relay, args=(*ends, answer), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield uri
    finally:
        listener.close()


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    database: str
    user: str  # owns `database`; logs in with its password over TCP
    password: str
    socket_dir: Path  # the superuser `postgres` logs in here without a password

    @property
    def url(self) -> str:
        """The SQLAlchemy URL a project puts in DATABASE_URL."""
        credentials = f"{self.user}:{self.password}"
        return f"postgresql+psycopg://{credentials}@{self.host}:{self.port}/{self.database}"

    def psql(self, statement: str) -> str:
        """Run SQL in `database` as the superuser; its output, unaligned, without headers."""
        command = [postgres_binary("psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1"]
        command += ["-h", str(self.socket_dir), "-p", str(self.port), "-U", "postgres"]
        command += ["-d", self.database, "-c", statement]
        return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def postgres_binary(name: str) -> str:
    """Debian keeps the server's programs in /usr/lib/postgresql/<major>/bin, off PATH."""
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: p.parts[-3])
    path = str(found[-1]) if found else shutil.which(name)
    if path is None:
        raise RuntimeError(
            f"PostgreSQL's {name} is not installed: `apt-get install postgresql` (.ci/run does)"
        )
    return path


def _as_postgres(command: list[str]) -> list[str]:
    """The server refuses to run as root: as root, run it as Debian's `postgres` user."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@contextmanager
def postgres_server(database: str = "shop", user: str = "analyst") -> Iterator[PostgresServer]:
    """A PostgreSQL cluster of its own (initdb in a temporary directory) on a free loopback
    port, password authentication over TCP; one database owned by one user. Stopped and
    deleted when the block ends."""
    workdir = Path(tempfile.mkdtemp(prefix="template-tests-pg-"))
    if os.geteuid() == 0:
        shutil.chown(workdir, "postgres", "postgres")
    data, log, port = workdir / "data", workdir / "server.log", free_port()
    password = f"pg-{secrets.token_hex(12)}"
    pg_ctl = postgres_binary("pg_ctl")
    initdb = [postgres_binary("initdb"), "-D", str(data), "-U", "postgres", "-E", "UTF8"]
    initdb += ["--auth-local=trust", "--auth-host=scram-sha-256", "--no-instructions"]
    options = f"-p {port} -h 127.0.0.1 -k {workdir} -c fsync=off"
    start = [pg_ctl, "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start"]
    try:
        subprocess.run(_as_postgres(initdb), check=True, capture_output=True, text=True)
        result = subprocess.run(_as_postgres(start), capture_output=True, text=True)
        if result.returncode != 0:
            shown = log.read_text()[-3000:] if log.exists() else ""
            raise RuntimeError(f"PostgreSQL did not start: {result.stderr}{shown}")
        server = PostgresServer("127.0.0.1", port, "postgres", user, password, workdir)
        server.psql(f"CREATE ROLE {user} LOGIN PASSWORD '{password}'")
        server.psql(f"CREATE DATABASE {database} OWNER {user}")
        yield PostgresServer("127.0.0.1", port, database, user, password, workdir)
    finally:
        if (data / "postmaster.pid").exists():
            stop = [pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"]
            subprocess.run(_as_postgres(stop), capture_output=True)
        shutil.rmtree(workdir, ignore_errors=True)


@dataclass(frozen=True)
class MariadbServer:
    host: str
    port: int
    database: str
    user: str  # has every privilege on `database` and no other; logs in with its password
    password: str
    workdir: Path  # the data directory (data/), the socket, the server's log

    @property
    def url(self) -> str:
        """The store URL a ZenML server takes (ZENML_STORE_URL). ZenML 0.98's SqlZenStore
        accepts the driver `mysql` only (not `mysql+pymysql`) and connects with pymysql,
        which `zenml[local]` and so `zenml[server]` install."""
        credentials = f"{self.user}:{self.password}"
        return f"mysql://{credentials}@{self.host}:{self.port}/{self.database}"

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    def sql(self, statement: str) -> str:
        """Run SQL in `database` as `user` over TCP; its output, tab-separated, no headers."""
        command = [mariadb_binary("mariadb"), f"--defaults-file={self.workdir / 'client.cnf'}"]
        command += ["--batch", "--skip-column-names", "-e", statement, self.database]
        return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def mariadb_binary(name: str) -> str:
    """mariadbd is in /usr/sbin, which a normal user's PATH may lack."""
    path = shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/usr/bin") / name) if p.exists()), None
    )
    if path is None:
        raise RuntimeError(
            f"MariaDB's {name} is not installed: `apt-get install mariadb-server` (.ci/run does)"
        )
    return path


@contextmanager
def mariadb_server(database: str = "zenml", user: str = "zenml") -> Iterator[MariadbServer]:
    """A MariaDB server of its own (mariadb-install-db in a temporary directory, no option
    file read) on a free loopback port, its socket in that directory; one database and one
    user with a random password, who may use that database only. utf8mb4, as Debian's packaged
    configuration sets. Stopped and deleted when the block ends."""
    install_db, mariadbd = mariadb_binary("mariadb-install-db"), mariadb_binary("mariadbd")
    workdir = Path(tempfile.mkdtemp(prefix="template-tests-mariadb-"))
    port, password = free_port(), f"db-{secrets.token_hex(12)}"
    server = MariadbServer("127.0.0.1", port, database, user, password, workdir)
    # As root, mariadbd refuses to start without --user; root owns this directory, so it runs
    # as root. As a normal user, it runs as that user (--user would be ignored with a warning).
    common = ["--no-defaults", f"--datadir={server.data_dir}", "--innodb-log-file-size=16M"]
    common += ["--user=root"] if os.geteuid() == 0 else []
    # Created at start-up (--init-file): mariadb-install-db's bootstrap cannot CREATE USER.
    init, client = workdir / "init.sql", workdir / "client.cnf"
    for path in (init, client):
        path.touch(mode=0o600)
    account = f"'{user}'@'127.0.0.1'"
    init.write_text(
        f"CREATE DATABASE `{database}`;\n"
        f"CREATE USER {account} IDENTIFIED BY '{password}';\n"
        f"GRANT ALL PRIVILEGES ON `{database}`.* TO {account};\n"
    )
    options = {"user": user, "password": password, "host": "127.0.0.1", "port": port}
    client.write_text("[client]\n" + "".join(f"{k}={v}\n" for k, v in options.items()))
    install = [install_db, *common, "--skip-test-db"]
    install += ["--auth-root-authentication-method=socket", "--skip-name-resolve"]
    command = [mariadbd, *common, "--bind-address=127.0.0.1", f"--port={port}"]
    command += [f"--socket={workdir / 'mysqld.sock'}", f"--pid-file={workdir / 'mysqld.pid'}"]
    command += ["--skip-name-resolve", f"--init-file={init}", "--innodb-buffer-pool-size=64M"]
    command += ["--innodb-flush-log-at-trx-commit=0", "--character-set-server=utf8mb4"]
    command += ["--collation-server=utf8mb4_general_ci"]
    log, process = workdir / "server.log", None
    try:
        installed = subprocess.run(install, capture_output=True, text=True)
        if installed.returncode != 0:
            output = (installed.stdout + installed.stderr)[-3000:]
            raise RuntimeError(f"mariadb-install-db failed:\n{output}")
        process = subprocess.Popen(
            command,
            cwd=workdir,
            stdout=subprocess.DEVNULL,
            stderr=log.open("w"),  # no --log-error: the server logs to stderr
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                server.sql("SELECT 1")
                break
            except subprocess.CalledProcessError:
                if process.poll() is not None or time.monotonic() > deadline:
                    shown = log.read_text()[-3000:]
                    raise RuntimeError(f"MariaDB did not start:\n{shown}") from None
                time.sleep(0.2)
        yield server
    finally:
        if process is not None:
            process.terminate()  # SIGTERM: a clean shutdown
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(workdir, ignore_errors=True)


@dataclass(frozen=True)
class SparkCluster:
    master: str  # spark://127.0.0.1:PORT, what `spark.master` takes
    ui: str  # the master's web UI; `{ui}/json/` lists workers and applications

    def status(self) -> dict:
        with urllib.request.urlopen(f"{self.ui}/json/", timeout=5) as reply:
            return json.loads(reply.read())


@contextmanager
def spark_cluster(python: Path, workers: int = 2, memory: str = "1g") -> Iterator[SparkCluster]:
    """A Spark standalone cluster on loopback: a master and `workers` workers (1 core and
    `memory` each), run by `bin/spark-class` of the pyspark that `python` imports (a project's venv;
    Java 17+ on PATH). Every process binds 127.0.0.1 (SPARK_LOCAL_IP, --host); each runs in
    its own process group, stopped when the block ends."""
    where = "import os, pyspark; print(os.path.dirname(pyspark.__file__))"
    home = subprocess.run([str(python), "-c", where], check=True, capture_output=True, text=True)
    spark_class = str(Path(home.stdout.strip()) / "bin" / "spark-class")
    workdir = Path(tempfile.mkdtemp(prefix="template-tests-spark-"))
    env = {**os.environ, "SPARK_HOME": home.stdout.strip(), "SPARK_LOCAL_IP": "127.0.0.1"}
    env |= {"SPARK_LOG_DIR": str(workdir), "PYSPARK_PYTHON": str(python)}
    port, ui_port = free_port(), free_port()
    cluster = SparkCluster(f"spark://127.0.0.1:{port}", f"http://127.0.0.1:{ui_port}")
    master = ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1"]
    master += ["--port", str(port), "--webui-port", str(ui_port)]
    commands = [master]
    for index in range(workers):
        worker = ["org.apache.spark.deploy.worker.Worker", cluster.master, "--host", "127.0.0.1"]
        worker += ["--cores", "1", "--memory", memory, "--webui-port", str(free_port())]
        commands.append([*worker, "--work-dir", str(workdir / f"worker-{index}")])
    processes, logs = [], []
    try:
        for index, command in enumerate(commands):
            logs.append(workdir / f"process-{index}.log")
            processes.append(
                subprocess.Popen(
                    [spark_class, *command],
                    cwd=workdir,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=logs[-1].open("w"),
                    start_new_session=True,
                )
            )
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(OSError, ValueError):
                if cluster.status().get("aliveworkers") == workers:
                    break
            if any(p.poll() is not None for p in processes) or time.monotonic() > deadline:
                shown = "\n".join(log.read_text()[-1500:] for log in logs)
                raise RuntimeError(f"the Spark cluster did not start:\n{shown}")
            time.sleep(0.5)
        yield cluster
    finally:
        for process in reversed(processes):  # workers first, then the master
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def browser_page(
    url: str, screenshot: Path | None = None, wait_for=(), seconds: int = 60, size=(1600, 1200)
) -> str:
    """What a user sees at `url`: `document.body.innerText` in headless Chromium (Debian's
    `chromium` + `chromium-driver`, driven over WebDriver's plain HTTP: no new dependency) once
    every string in `wait_for` shows and the text holds still (React pages draw late: poll,
    never a fixed wait); optionally a PNG of the window. MLflow draws a chart only once it is
    in the window: give chart pages a tall `size`. No host name resolves (not even localhost)."""
    driver, chromium = shutil.which("chromedriver"), shutil.which("chromium")
    if driver is None or chromium is None:
        raise RuntimeError("no Chromium: `apt-get install chromium chromium-driver` (.ci/run does)")
    port, deadline = free_port(), time.monotonic() + seconds
    tmp = tempfile.mkdtemp(prefix="template-tests-browser-")  # Chromium's profile and sockets
    command = [driver, f"--port={port}"]  # chromedriver listens on loopback only
    env = {**os.environ, "TMPDIR": tmp, "TZ": "UTC"}  # dates on chart axes: UTC
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, start_new_session=True)

    def call(method: str, path: str, body: dict | None = None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data, method=method)
        try:
            with urllib.request.urlopen(request, timeout=60) as reply:
                return json.loads(reply.read())["value"]
        except urllib.error.HTTPError as error:  # WebDriver says what failed in the body
            raise RuntimeError(
                f"chromedriver: {json.loads(error.read())['value']['message']}"
            ) from None

    args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
    args += ["--no-first-run", "--disable-background-networking", "--disable-component-update"]
    args += ["--disable-sync", f"--window-size={size[0]},{size[1]}"]
    args += ["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]
    capabilities = {"alwaysMatch": {"goog:chromeOptions": {"binary": chromium, "args": args}}}
    try:
        while process.poll() is None and time.monotonic() < deadline:  # until it listens
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=2).close()
                break
            time.sleep(0.2)
        session = (
            "/session/" + call("POST", "/session", {"capabilities": capabilities})["sessionId"]
        )
        call("POST", f"{session}/url", {"url": url})
        script, text = {"script": "return document.body.innerText", "args": []}, None
        while True:  # until the strings show and the text holds still (charts drawn) for 0.5 s
            previous, text = text, call("POST", f"{session}/execute/sync", script)
            if not (missing := [s for s in wait_for if s not in text]) and text == previous:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"{url} shows no {missing} after {seconds} s:\n{text[-3000:]}")
            time.sleep(0.5)
        if screenshot is not None:
            screenshot.write_bytes(base64.b64decode(call("GET", f"{session}/screenshot")))
        call("DELETE", session)  # Chromium quits
        return text
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):  # Chromium's processes end, then its files
            for _ in range(100):
                os.killpg(process.pid, 0)
                time.sleep(0.1)
            os.killpg(process.pid, signal.SIGKILL)
        shutil.rmtree(tmp, ignore_errors=True)
