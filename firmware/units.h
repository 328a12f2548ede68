/* firmware/units.h — field units from the inputs' data dictionary. */
#ifndef CH_UNITS_H
#define CH_UNITS_H

#include "drivers/driver.h"
#include "firmware/config.h"

struct ch_units;
/* NULL only when out of memory. */
struct ch_units *ch_units_build(const struct ch_config *c);
/* drv_env.unit_of: env->units is a struct ch_units. */
const char *ch_unit_of(const struct drv_env *env, const char *measurement, const char *field);
void ch_units_free(struct ch_units *t);

#endif
