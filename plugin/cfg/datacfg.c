/* Reads Darknet's .data files, list files and label files strictly, with file:line
 * errors, and assigns labels to image paths by Darknet's substring rule. */
#define _POSIX_C_SOURCE 200809L
#include "cfg/cfg.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Keys stock Darknet reads from .data files; ours use a subset. */
static const char *known_data_keys[] = {"classes", "train", "valid", "test", "labels", "names", "backup", "top",
                                        "tree", "leaves", "eval", "results", "map", "tag", "train_list",
                                        /* a grown detector's (DESIGN: Detection) */
                                        "old_data", "new_data", 0};
#define NDATA_KEYS (sizeof known_data_keys / sizeof known_data_keys[0] - 1)

/* Index of key in known_data_keys, names counted as labels (its alias), or -1. */
static int data_key_index(const char *key)
{
    if (strcmp(key, "names") == 0) key = "labels";
    for (int i = 0; known_data_keys[i]; ++i)
        if (strcmp(key, known_data_keys[i]) == 0) return i;
    return -1;
}

int lwf_datacfg_read(const char *path, lwf_datacfg *d, lwf_err *err)
{
    memset(d, 0, sizeof *d);
    d->top = 1;
    d->classes = -1;
    FILE *fp = lwf_open_regular(path, ".data file", err);
    if (!fp) return -1;
    d->path = lwf_strdup(path);
    char *buf = NULL;
    size_t cap = 0;
    int line = 0, rc = 0;
    int seen_at[NDATA_KEYS] = {0};          /* line of each key given so far, 0 if none */
    const char *seen_as[NDATA_KEYS] = {0};  /* its spelling there (labels or names) */
    long got;
    while ((got = lwf_read_text_line(fp, &buf, &cap, path, line + 1, "file", err)) >= 0) {
        ++line;
        char *hash = strchr(buf, '#');
        if (hash) *hash = '\0';
        strip(buf); /* libdarknet's: removes every blank, as Darknet's read_data_cfg does */
        if (!buf[0]) continue;
        char *eq = strchr(buf, '=');
        if (!eq || eq == buf) {
            rc = lwf_fail(err, "%s:%d: expected key=value, got '%s'", path, line, buf);
            break;
        }
        *eq = '\0';
        const char *key = buf, *val = eq + 1;
        int ki = data_key_index(key);
        if (ki < 0) {
            rc = lwf_fail(err, "%s:%d: unknown key '%s'", path, line, key);
            break;
        }
        /* a repeated key is an error, not "the last one wins" */
        if (seen_at[ki]) {
            if (strcmp(seen_as[ki], key) == 0)
                rc = lwf_fail(err, "%s:%d: key '%s' given twice (first at line %d)", path, line, key, seen_at[ki]);
            else
                rc = lwf_fail(err, "%s:%d: key '%s' given twice (first at line %d as '%s', its alias)", path, line,
                              key, seen_at[ki], seen_as[ki]);
            break;
        }
        seen_at[ki] = line;
        seen_as[ki] = strcmp(key, "names") == 0 ? "names" : known_data_keys[ki];
        char **slot = NULL;
        int *slot_line = NULL;
        if (strcmp(key, "classes") == 0) {
            if (lwf_parse_int(val, 1, 1 << 20, &d->classes)) {
                rc = lwf_fail(err, "%s:%d: classes must be an integer in [1, %d], got '%s'", path, line, 1 << 20, val);
                break;
            }
        } else if (strcmp(key, "top") == 0) {
            if (lwf_parse_int(val, 1, 1 << 20, &d->top)) {
                rc = lwf_fail(err, "%s:%d: top must be a positive integer, got '%s'", path, line, val);
                break;
            }
        } else if (strcmp(key, "train") == 0) slot = &d->train, slot_line = &d->train_line;
        else if (strcmp(key, "valid") == 0) slot = &d->valid, slot_line = &d->valid_line;
        else if (strcmp(key, "labels") == 0 || strcmp(key, "names") == 0) slot = &d->labels, slot_line = &d->labels_line;
        else if (strcmp(key, "backup") == 0) slot = &d->backup;
        else if (strcmp(key, "old_data") == 0) slot = &d->old_data;
        else if (strcmp(key, "new_data") == 0) slot = &d->new_data;
        if (slot) {
            if (!val[0]) {
                rc = lwf_fail(err, "%s:%d: %s is empty", path, line, key);
                break;
            }
            free(*slot);
            *slot = lwf_strdup(val);
            if (slot_line) *slot_line = line;
        }
    }
    if (got == -2) rc = -1;
    free(buf);
    fclose(fp);
    if (!rc && d->classes < 0) rc = lwf_fail(err, "%s: no classes= line", path);
    if (rc) lwf_datacfg_free(d);
    return rc;
}

void lwf_datacfg_free(lwf_datacfg *d)
{
    free(d->path);
    free(d->train);
    free(d->valid);
    free(d->labels);
    free(d->backup);
    free(d->old_data);
    free(d->new_data);
    memset(d, 0, sizeof *d);
}

int lwf_list_read(const char *path, lwf_list *l, lwf_err *err)
{
    memset(l, 0, sizeof *l);
    FILE *fp = lwf_open_regular(path, "list", err);
    if (!fp) return -1;
    char *buf = NULL;
    size_t cap = 0;
    int line = 0, rc = 0, room = 0;
    long got;
    while ((got = lwf_read_text_line(fp, &buf, &cap, path, line + 1, "file", err)) >= 0) {
        ++line;
        size_t n = (size_t)got;
        size_t s = 0;
        while (s < n && isspace((unsigned char)buf[s])) ++s;
        while (n > s && isspace((unsigned char)buf[n - 1])) buf[--n] = '\0';
        if (s == n) continue;
        if (l->n == room) {
            room = room ? room * 2 : 256;
            char **ni = realloc(l->items, (size_t)room * sizeof *ni);
            if (ni) l->items = ni;
            int *nl = realloc(l->line, (size_t)room * sizeof *nl);
            if (nl) l->line = nl;
            if (!ni || !nl) {
                rc = lwf_fail(err, "%s:%d: out of memory", path, line);
                break;
            }
        }
        l->line[l->n] = line;
        l->items[l->n] = lwf_strdup(buf + s);
        if (!l->items[l->n]) {
            rc = lwf_fail(err, "%s:%d: out of memory", path, line);
            break;
        }
        l->n++;
    }
    if (got == -2) rc = -1;
    free(buf);
    fclose(fp);
    if (!rc && l->n == 0) rc = lwf_fail(err, "%s: empty list", path);
    if (rc) lwf_list_free(l);
    return rc;
}

int lwf_datacfg_list(const lwf_datacfg *d, const char *key, lwf_list *l, lwf_err *err)
{
    const char *path = NULL;
    int line = 0;
    if (strcmp(key, "train") == 0) path = d->train, line = d->train_line;
    else if (strcmp(key, "valid") == 0) path = d->valid, line = d->valid_line;
    else if (strcmp(key, "labels") == 0) path = d->labels, line = d->labels_line;
    memset(l, 0, sizeof *l);
    if (!path) return lwf_fail(err, "%s: no %s= line", d->path, key);
    lwf_err lerr;
    if (lwf_list_read(path, l, &lerr) == 0) return 0;
    /* where the path came from: a relative one is read from the current folder */
    char here[4096] = "";
    if (path[0] != '/' && !getcwd(here, sizeof here)) here[0] = '\0';
    return lwf_fail(err, "%s (named at %s:%d: %s=%s%s%s)", lerr.msg, d->path, line, key, path,
                    here[0] ? ", a relative path, read from the current folder " : "", here);
}

void lwf_list_free(lwf_list *l)
{
    for (int i = 0; i < l->n; ++i) free(l->items[i]);
    free(l->items);
    free(l->line);
    memset(l, 0, sizeof *l);
}

int lwf_labels_of(const lwf_list *paths, const char *listpath, const lwf_list *labels, int *out, lwf_err *err)
{
    for (int i = 0; i < paths->n; ++i) {
        int found = -1;
        for (int j = 0; j < labels->n; ++j) {
            if (!strstr(paths->items[i], labels->items[j])) continue;
            if (found >= 0)
                return lwf_fail(err, "%s:%d: '%s' matches two labels, '%s' and '%s' (Darknet takes the label that "
                                     "occurs in the path: it must be exactly one)",
                                listpath, paths->line[i], paths->items[i], labels->items[found], labels->items[j]);
            found = j;
        }
        if (found < 0)
            return lwf_fail(err, "%s:%d: '%s' matches no label (Darknet takes the label that occurs in the path)",
                            listpath, paths->line[i], paths->items[i]);
        out[i] = found;
    }
    return 0;
}
