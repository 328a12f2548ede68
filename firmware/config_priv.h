/* firmware/config_priv.h — what the loader's files share. */
#ifndef CH_CONFIG_PRIV_H
#define CH_CONFIG_PRIV_H

#include "firmware/config.h"

#define NS_MS 1000000LL
#define NS_S 1000000000LL

extern const struct hub_cfg_key ch_hub_keys[];
extern const struct hub_cfg_key ch_journal_keys[];
extern const struct hub_cfg_key ch_status_keys[];

#endif
