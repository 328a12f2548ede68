/* firmware/status_listen.c — the status listener's address (hub.status.listen):
 * parsed the same way by `cityhub check` and by the server. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "firmware/status.h"

int ch_status_parse_listen(const char *text, char *host, size_t hostlen, int *port, char *err,
                           size_t errlen)
{
    const char *p = text, *colon;
    size_t hl;
    if (p[0] == '[') {
        const char *close = strchr(p, ']');
        if (!close || close[1] != ':') {
            snprintf(err, errlen, "\"%s\": write an IPv6 address as [ADDRESS]:PORT", text);
            return -1;
        }
        hl = (size_t)(close - p - 1);
        p++;
        colon = close + 1;
    } else {
        colon = strrchr(p, ':');
        if (!colon || strchr(p, ':') != colon) {
            snprintf(err, errlen, "\"%s\": use HOST:PORT (an IPv6 address in brackets: [::1]:8780)",
                     text);
            return -1;
        }
        hl = (size_t)(colon - p);
    }
    if (hl == 0 || hl >= hostlen) {
        snprintf(err, errlen, "\"%s\": the host is empty or too long", text);
        return -1;
    }
    memcpy(host, p, hl);
    host[hl] = 0;
    char *end = NULL;
    long v = strtol(colon + 1, &end, 10);
    if (colon[1] < '0' || colon[1] > '9' || *end || v < 1 || v > 65535) {
        snprintf(err, errlen, "\"%s\": the port must be 1..65535", text);
        return -1;
    }
    if (text[0] == '[') {
        struct in6_addr a6;
        if (inet_pton(AF_INET6, host, &a6) != 1) {
            snprintf(err, errlen, "\"%s\": %s is not an IPv6 address", text, host);
            return -1;
        }
    }
    for (const char *c = host; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '.' || *c == '-' || *c == ':' || *c == '%' || *c == '_')) {
            snprintf(err, errlen, "\"%s\": the host has a character not allowed", text);
            return -1;
        }
    *port = (int)v;
    return 0;
}

int ch_status_host_is_loopback(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (strcasecmp(host, "localhost") == 0)
        return 1;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6) || (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
    return 0;
}
