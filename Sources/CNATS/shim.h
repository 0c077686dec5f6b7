#ifndef SCENESTREAM_CNATS_SHIM_H
#define SCENESTREAM_CNATS_SHIM_H
#include <nats/nats.h>
#endif
