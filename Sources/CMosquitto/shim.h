#ifndef SCENESTREAM_CMOSQUITTO_SHIM_H
#define SCENESTREAM_CMOSQUITTO_SHIM_H
#include <mosquitto.h>
#endif
