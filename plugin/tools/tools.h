/* tools/: lwf init and lwf export (cfgtools.c; the interface is public: lwf.h). */
#ifndef LWF_TOOLS_H
#define LWF_TOOLS_H

#include "io/io.h"



#endif
