import './base.css';
import './results.css';
import './publish.css';
