/* firmware/cityhub.h — the program's subcommands (main.c parses the command
 * line and calls one). Each returns the process's exit status. */
#ifndef CH_CITYHUB_H
#define CH_CITYHUB_H

#include <stdio.h>

#define EXIT_USAGE 2

/* cityhub run: the daemon (run.c). log_level overrides hub.log_level. */
int ch_cmd_run(const char *path, const char *log_level);
/* cityhub check (inspect.c). */
int ch_cmd_check(const char *path);
/* cityhub journal [--dump [--from SEQ]] (inspect.c). */
int ch_cmd_journal(const char *path, int dump, unsigned long long from, int from_set);
/* cityhub journal stat|verify|dump (PATH | -c FILE) ... (inspect.c): argv[0]
 * is the tool's name. */
int ch_cmd_journal_stat(int argc, char **argv);
int ch_cmd_journal_verify(int argc, char **argv);
int ch_cmd_journal_dump(int argc, char **argv);

/* cityhub schema -c FILE --format json|markdown (schema.c). */
int ch_cmd_schema(const char *path, const char *format);

/* cityhub deadletter list|retry ... (deadletter.c): argv[0] is "deadletter";
 * usage prints its help. */
int ch_cmd_deadletter(int argc, char **argv, void (*usage)(FILE *));

struct drv_ops;
struct drv_command;
/* A driver's own command (commands.c): argv[0] is its name. */
int ch_cmd_driver(const struct drv_ops *ops, const struct drv_command *dc, int argc, char **argv);

/* Every driver's global_init, in registry order; on a failure the ones
 * done are undone. Returns 0 or -1 (logged). */
int ch_drivers_global_init(void);
void ch_drivers_global_cleanup(void);

#endif
