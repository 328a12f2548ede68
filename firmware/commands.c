/* firmware/commands.c — running a driver's own command (`cityhub scan`, ...):
 * the program gives it the command line and a way to load the
 * configuration as `cityhub check` does (drivers/driver.h). */
#include <stdio.h>
#include <string.h>

#include "drivers/driver.h"
#include "firmware/cityhub.h"
#include "firmware/config.h"

struct cmd_state {
    struct ch_config *cfg;
};

static const void *cmd_load(const struct drv_cmd_env *env, const char *path)
{
    struct cmd_state *st = env->priv;
    if (st->cfg)
        return NULL; /* once */
    unsigned nerr = 0;
    st->cfg = ch_config_load(path, stderr, &nerr);
    if (!st->cfg) {
        fprintf(stderr, "%s: %u error%s\n", path, nerr, nerr == 1 ? "" : "s");
        return NULL;
    }
    for (size_t i = 0; i < st->cfg->ninputs; i++)
        if (st->cfg->inputs[i].ops == env->self)
            return &st->cfg->inputs[i].cfg;
    for (size_t i = 0; i < st->cfg->noutputs; i++)
        if (st->cfg->outputs[i].ops == env->self)
            return st->cfg->outputs[i].cfg;
    return NULL;
}

int ch_cmd_driver(const struct drv_ops *ops, const struct drv_command *dc, int argc, char **argv)
{
    struct cmd_state st = {NULL};
    struct drv_cmd_env env = {.self = ops, .load = cmd_load, .priv = &st};
    if (ch_drivers_global_init() != 0)
        return 1;
    int rc = dc->run(argc, argv, &env);
    ch_config_free(st.cfg);
    ch_drivers_global_cleanup();
    return rc;
}
