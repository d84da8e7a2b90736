/* Reads a Darknet-style cfg file into sections of key=value options, keeping line
 * numbers for error messages.  What the sections mean is left to builder.c. */
#define _POSIX_C_SOURCE 200809L
#include "cfg/cfg.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void trim(char *s)
{
    char *hash = strchr(s, '#');
    if (hash) *hash = '\0';
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
    size_t i = 0;
    while (s[i] && isspace((unsigned char)s[i])) ++i;
    if (i) memmove(s, s + i, n - i + 1);
}

static int add_section(lwf_cfgfile *cf, const char *type, int line, lwf_err *err)
{
    lwf_section *ns = realloc(cf->sections, (size_t)(cf->nsections + 1) * sizeof *ns);
    if (!ns) return lwf_fail(err, "%s:%d: out of memory", cf->path, line);
    cf->sections = ns;
    lwf_section *s = &ns[cf->nsections];
    memset(s, 0, sizeof *s);
    s->type = lwf_strdup(type);
    s->line = line;
    if (!s->type) return lwf_fail(err, "%s:%d: out of memory", cf->path, line);
    cf->nsections++;
    return 0;
}

static int add_option(lwf_cfgfile *cf, char *text, int line, lwf_err *err)
{
    lwf_section *s = &cf->sections[cf->nsections - 1];
    char *eq = strchr(text, '=');
    if (!eq) return lwf_fail(err, "%s:%d: expected key=value, got '%s'", cf->path, line, text);
    *eq = '\0';
    char *key = text, *val = eq + 1;
    strip(key); /* libdarknet's: removes every blank, as Darknet's own reader does */
    strip(val);
    if (!*key) return lwf_fail(err, "%s:%d: option with an empty key", cf->path, line);
    if (lwf_cfg_opt(s, key))
        return lwf_fail(err, "%s:%d: [%s] key '%s' given twice (first at line %d)", cf->path, line,
                        s->type, key, lwf_cfg_opt(s, key)->line);
    lwf_opt *no = realloc(s->opts, (size_t)(s->nopts + 1) * sizeof *no);
    if (!no) return lwf_fail(err, "%s:%d: out of memory", cf->path, line);
    s->opts = no;
    no[s->nopts].key = lwf_strdup(key);
    no[s->nopts].val = lwf_strdup(val);
    no[s->nopts].line = line;
    s->nopts++;
    if (!no[s->nopts - 1].key || !no[s->nopts - 1].val)
        return lwf_fail(err, "%s:%d: out of memory", cf->path, line);
    return 0;
}

int lwf_cfg_read(const char *path, lwf_cfgfile *cf, lwf_err *err)
{
    memset(cf, 0, sizeof *cf);
    cf->path = lwf_strdup(path);
    if (!cf->path) return lwf_fail(err, "%s: out of memory", path);
    FILE *fp = lwf_open_regular(path, "cfg", err);
    if (!fp) {
        lwf_cfg_free(cf);
        return -1;
    }
    char *buf = NULL;
    size_t cap = 0;
    long got;
    int line = 0, rc = 0;
    while ((got = lwf_read_text_line(fp, &buf, &cap, path, line + 1, "cfg", err)) >= 0) {
        ++line;
        trim(buf);
        if (buf[0] == '\0' || buf[0] == ';') continue;
        if (buf[0] == '[') {
            size_t m = strlen(buf);
            if (buf[m - 1] != ']' || m < 3) {
                rc = lwf_fail(err, "%s:%d: malformed section header '%s' (expected [name])", path, line, buf);
                break;
            }
            buf[m - 1] = '\0';
            char *type = buf + 1;
            strip(type);
            if (!*type || strchr(type, '[') || strchr(type, ']')) {
                rc = lwf_fail(err, "%s:%d: malformed section header", path, line);
                break;
            }
            if ((rc = add_section(cf, type, line, err))) break;
        } else {
            if (cf->nsections == 0) {
                rc = lwf_fail(err, "%s:%d: option '%s' before the first [section]", path, line, buf);
                break;
            }
            if ((rc = add_option(cf, buf, line, err))) break;
        }
    }
    if (got == -2) rc = -1;
    free(buf);
    fclose(fp);
    if (!rc && cf->nsections == 0) rc = lwf_fail(err, "%s: empty cfg: no [net] section", path);
    if (rc) lwf_cfg_free(cf);
    return rc;
}

void lwf_cfg_free(lwf_cfgfile *cf)
{
    for (int i = 0; i < cf->nsections; ++i) {
        lwf_section *s = &cf->sections[i];
        for (int j = 0; j < s->nopts; ++j) {
            free(s->opts[j].key);
            free(s->opts[j].val);
        }
        free(s->opts);
        free(s->type);
    }
    free(cf->sections);
    free(cf->path);
    memset(cf, 0, sizeof *cf);
}

const lwf_opt *lwf_cfg_opt(const lwf_section *s, const char *key)
{
    for (int i = 0; i < s->nopts; ++i)
        if (strcmp(s->opts[i].key, key) == 0) return &s->opts[i];
    return NULL;
}
