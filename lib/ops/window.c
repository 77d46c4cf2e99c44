/*
 * window.c - geometry of window ops (conv, depthwise conv, pools) from a node
 * of a finalized model.
 */
#include <string.h>

#include "ops_internal.h"

void tml_window_from_node(const tml_model *m, const tml_node *n, int batch, tml_window *win)
{
    const tml_tensor *x = &m->tensors[n->in[0]];
    const tml_tensor *y = &m->tensors[n->out];
    TML_ASSERT(x->ndim == 3 && y->ndim == 3);
    memset(win, 0, sizeof(*win));
    win->n = batch;
    win->h = x->dims[0];
    win->w = x->dims[1];
    win->c = x->dims[2];
    win->oh = y->dims[0];
    win->ow = y->dims[1];
    win->o = y->dims[2];
    win->kh = n->kh;
    win->kw = n->kw;
    win->sh = n->sh;
    win->sw = n->sw;
    win->dh = n->dh > 0 ? n->dh : 1;
    win->dw = n->dw > 0 ? n->dw : 1;
    win->pad_t = n->pad[0];
    win->pad_l = n->pad[1];
    win->groups = 1;
    win->depth_mult = 1;
    win->act = TML_ACT_NONE;
    switch (n->op) {
    case TML_OP_CONV2D:
        win->groups = n->groups;
        win->act = n->act;
        break;
    case TML_OP_DEPTHWISE_CONV2D:
        win->depth_mult = n->depth_mult;
        win->act = n->act;
        break;
    default: /* pools: one output channel per input channel */
        win->o = win->c;
        break;
    }
}
