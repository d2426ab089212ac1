/*
 * chhost runs the ClickHouse engine shipped as libchdb.so as a network server.
 *
 * Usage: chhost /path/to/libchdb.so [clickhouse-local options...]
 *
 * libchdb.so exports query_stable_v2, the clickhouse-local entry point. Given
 * --listen_host/--tcp_port/--http_port and a query that runs SYSTEM START LISTEN
 * TCP/HTTP followed by a statement that never ends, the library serves the
 * native and HTTP protocols for as long as that query runs. chdb_connect and
 * chdb_query cannot do this: they never install the callback that starts the
 * listeners, which is why a separate host process exists at all.
 *
 * devinfra compiles this file with gcc into the cache directory (the binary's
 * name carries the source's hash, so an edited source is rebuilt) and stops the
 * process group with SIGTERM; clickhouse-local handles the signal by cancelling
 * the query, which makes query_stable_v2 return.
 *
 * The server runs in a child process that chhost restarts when it dies on its
 * own. libchdb's server aborts the whole process ("terminate called for
 * uncaught exception") when a native-protocol client resets its connection in
 * the middle of a query, e.g. a Go client cancelling a context; without the
 * restart one such test would take the shared server down for the rest of a
 * test suite. Tables survive a restart (they are on disk under --path); the
 * queries in flight fail. A child that dies within its first seconds is a
 * startup failure (a port taken, a bad option) and ends chhost with its
 * status, so that devinfra sees it and retries on other ports.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Layout of struct local_result_v2 from chdb's programs/local/chdb.h. Only
 * error_message is read, but every field before it must be declared so that its
 * offset is right. */
struct local_result_v2 {
	char *buf;
	size_t len;
	void *vec;
	double elapsed;
	uint64_t rows_read;
	uint64_t bytes_read;
	char *error_message;
};

typedef struct local_result_v2 *(*query_stable_v2_fn)(int, char **);

/* serve runs the server in this process until its query ends. */
static int serve(int argc, char **argv)
{
	void *lib = dlopen(argv[1], RTLD_NOW | RTLD_GLOBAL);
	if (lib == NULL) {
		fprintf(stderr, "chhost: cannot load %s: %s\n", argv[1], dlerror());
		return 1;
	}
	query_stable_v2_fn query = (query_stable_v2_fn)dlsym(lib, "query_stable_v2");
	if (query == NULL) {
		fprintf(stderr, "chhost: %s has no query_stable_v2: %s\n", argv[1], dlerror());
		return 1;
	}
	/* clickhouse-local parses argv[0] as the program name. */
	argv[1] = "clickhouse";
	struct local_result_v2 *res = query(argc - 1, argv + 1);
	if (res == NULL) {
		fprintf(stderr, "chhost: query_stable_v2 returned no result\n");
		return 1;
	}
	if (res->error_message != NULL) {
		fprintf(stderr, "chhost: %s\n", res->error_message);
		return 1;
	}
	return 0;
}

/* The first child dying sooner than this failed to start: not restarted.
 * Restarted children dying this soon count as a crash loop, which ends
 * chhost after MAX_QUICK_DEATHS in a row. */
#define STARTUP_SECONDS 10
#define MAX_QUICK_DEATHS 5

static volatile sig_atomic_t stopping;
static volatile pid_t child;

static void on_stop(int sig)
{
	stopping = 1;
	/* devinfra signals the whole group; a signal sent to chhost alone must
	 * reach the server too. */
	if (child > 0)
		kill(child, sig);
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

/* forget_system_logs removes <--path>/data/system. clickhouse-local keeps
 * the system database in memory but its log tables' data on disk: after a
 * restart, creating system.query_log again fails with "Directory for table
 * data data/system/query_log/ already exists" and the query log stays off.
 * The logs of the crashed process are lost; user tables are untouched. */
static void forget_system_logs(int argc, char **argv)
{
	const char *prefix = "--path=";
	for (int i = 2; i < argc; i++) {
		if (strncmp(argv[i], prefix, strlen(prefix)) != 0)
			continue;
		char dir[4096];
		int n = snprintf(dir, sizeof dir, "%s/data/system", argv[i] + strlen(prefix));
		if (n > 0 && (size_t)n < sizeof dir)
			nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	}
}

static int status_code(int st)
{
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	return 128 + WTERMSIG(st);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s LIBCHDB_SO [clickhouse-local options...]\n", argv[0]);
		return 2;
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_stop;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	pid_t parent = getpid();
	int quick = 0;
	for (int restarts = 0;; restarts++) {
		time_t started = time(NULL);
		pid_t pid = fork();
		if (pid < 0) {
			perror("chhost: fork");
			return 1;
		}
		if (pid == 0) {
			signal(SIGTERM, SIG_DFL);
			signal(SIGINT, SIG_DFL);
			/* Never outlive chhost (e.g. SIGKILL to chhost alone). */
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() != parent)
				_exit(1);
			_exit(serve(argc, argv));
		}
		child = pid;
		if (stopping) /* a stop signal raced with the fork */
			kill(pid, SIGTERM);
		int st;
		while (waitpid(pid, &st, 0) < 0) {
			if (errno != EINTR) {
				perror("chhost: waitpid");
				return 1;
			}
		}
		child = 0;
		int code = status_code(st);
		if (stopping || code == 0)
			return code;
		long lived = (long)(time(NULL) - started);
		quick = lived < STARTUP_SECONDS ? quick + 1 : 0;
		if ((restarts == 0 && quick > 0) || quick >= MAX_QUICK_DEATHS) {
			fprintf(stderr, "chhost: server process %d ended with status %d after %ld s; not restarting\n", (int)pid, code, lived);
			return code;
		}
		fprintf(stderr, "chhost: server process %d ended with status %d after %ld s; restarting it (restart %d)\n", (int)pid, code, lived, restarts + 1);
		fflush(stderr);
		forget_system_logs(argc, argv);
		sleep(1);
	}
}
