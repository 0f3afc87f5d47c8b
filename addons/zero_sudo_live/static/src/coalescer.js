/**
 * Runs an async task at most once per `delay` milliseconds, however often it is asked for.
 *
 * The first request after a quiet period runs at once (a single change shows without delay);
 * requests arriving while it runs, or within `delay` of its start, are folded into one more
 * run at the end of the window. So a burst of a thousand events costs a view one reload at
 * once and one more per `delay`, never a reload per event. While `isReady()` is false (the tab
 * is hidden, a list row is being edited) the run waits, checked again every `delay`.
 */
export class Coalescer {
    /**
     * @param {() => Promise<void>|void} run
     * @param {number} delay milliseconds between the starts of two runs, at least
     * @param {{isReady?: () => boolean, onError?: (error: any) => void}} [options]
     */
    constructor(run, delay, { isReady = () => true, onError = (error) => console.error(error) } = {}) {
        this.run = run;
        this.delay = delay;
        this.isReady = isReady;
        this.onError = onError;
        this.pending = false;
        this.running = false;
        this.lastStart = -Infinity;
        this.timer = null;
        this.cancelled = false;
    }

    /** Ask for a run: now if the window allows, else once at the end of it. */
    schedule() {
        if (this.cancelled) {
            return;
        }
        this.pending = true;
        if (this.timer !== null || this.running) {
            return; // already coming: this request is folded into it
        }
        const wait = Math.max(0, this.lastStart + this.delay - Date.now());
        this.timer = setTimeout(() => this._fire(), wait);
    }

    /** Forget pending work (the view is gone). */
    cancel() {
        this.cancelled = true;
        this.pending = false;
        if (this.timer !== null) {
            clearTimeout(this.timer);
            this.timer = null;
        }
    }

    async _fire() {
        this.timer = null;
        if (!this.pending || this.cancelled) {
            return;
        }
        if (!this.isReady()) {
            this.timer = setTimeout(() => this._fire(), this.delay);
            return;
        }
        this.pending = false;
        this.running = true;
        this.lastStart = Date.now();
        try {
            await this.run();
        } catch (error) {
            this.onError(error);
        } finally {
            this.running = false;
            if (this.pending) {
                this.schedule();
            }
        }
    }
}
