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
 * process with SIGTERM; clickhouse-local handles the signal by cancelling the
 * query, which makes query_stable_v2 return.
 */
#include <dlfcn.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

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

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s LIBCHDB_SO [clickhouse-local options...]\n", argv[0]);
		return 2;
	}
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
